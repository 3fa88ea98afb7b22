// A small syntax highlighter (Python, JavaScript, JSON, shell, SQL): one regex pass, spans built with textContent.
"use strict";

(function (global) {
  const KEYWORDS = {
    python: "and as assert async await break class continue def del elif else except False finally for from global " +
      "if import in is lambda None nonlocal not or pass raise return True try while with yield print",
    js: "async await break case catch class const continue default delete do else export extends false finally for " +
      "function if import in instanceof let new null return super switch this throw true try typeof undefined var " +
      "void while yield",
    sql: "select from where group by order having join left right inner outer on as and or not insert into values " +
      "update set delete create table limit count sum avg min max distinct",
    sh: "if then else fi for do done while case esac function in export echo cd ls cat grep pip python",
  };
  const ALIASES = { py: "python", python3: "python", javascript: "js", ts: "js", typescript: "js", json: "js",
    bash: "sh", shell: "sh", console: "sh", zsh: "sh", postgresql: "sql" };
  const TOKEN = /(#[^\n]*|\/\/[^\n]*|--[^\n]*)|("""[\s\S]*?"""|'''[\s\S]*?'''|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|(\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b)|([A-Za-z_][\w]*)/gi;

  function highlight(code, lang) {
    const key = ALIASES[(lang || "").toLowerCase()] || (lang || "").toLowerCase() || "python";
    const words = new Set((KEYWORDS[key] || KEYWORDS.python).split(" "));
    const caseless = key === "sql";
    const frag = document.createDocumentFragment();
    let last = 0;
    let m;
    const pattern = new RegExp(TOKEN.source, "gi");
    const span = (cls, text) => {
      const s = document.createElement("span");
      s.className = cls;
      s.textContent = text;
      frag.appendChild(s);
    };
    while ((m = pattern.exec(code)) !== null) {
      if (m.index > last) frag.appendChild(document.createTextNode(code.slice(last, m.index)));
      last = pattern.lastIndex;
      if (m[1]) {
        const isComment = (m[1][0] === "#" && key !== "js") || (m[1].startsWith("//") && key === "js") ||
          (m[1].startsWith("--") && key === "sql");
        if (isComment) span("tok-comment", m[1]);
        else frag.appendChild(document.createTextNode(m[1]));
      } else if (m[2]) span("tok-string", m[2]);
      else if (m[3]) span("tok-number", m[3]);
      else if (m[4]) {
        if (words.has(caseless ? m[4].toLowerCase() : m[4])) span("tok-keyword", m[4]);
        else frag.appendChild(document.createTextNode(m[4]));
      }
    }
    if (last < code.length) frag.appendChild(document.createTextNode(code.slice(last)));
    return frag;
  }

  global.highlightCode = highlight;
})(window);
