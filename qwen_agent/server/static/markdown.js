// Safe markdown for untrusted model output: builds DOM nodes with createElement/textContent only (never
// innerHTML), so raw HTML in a reply stays text. Links must be http(s)/mailto; images must come from this server
// or be data:image/png|jpeg. Anything else is shown as plain text.
"use strict";

(function (global) {
  const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

  function safeLink(raw) {
    try {
      const url = new URL(raw, global.location.href);
      return LINK_PROTOCOLS.has(url.protocol) ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function safeImage(raw) {
    if (/^data:image\/(png|jpeg);base64,[A-Za-z0-9+/=]+$/.test(raw)) return raw;
    try {
      const url = new URL(raw, global.location.href);
      return url.origin === global.location.origin && (url.protocol === "http:" || url.protocol === "https:")
        ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  // Inline: `code`, **bold**, *italic* / _italic_, ![alt](src), [text](href), bare http(s) URLs.
  const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*([^*]+)\*\*|(?<![\w*])\*([^*\s][^*]*?)\*(?!\w)|(?<!\w)_([^_\s][^_]*?)_(?!\w)|!\[([^\]]*)\]\(([^()\s]+(?:\([^()\s]*\))?)\)|\[([^\]]+)\]\(([^()\s]+(?:\([^()\s]*\)[^()\s]*)?)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/g;

  function inline(text, parent) {
    const pattern = new RegExp(INLINE.source, "g");  // its own lastIndex: inline() recurses into bold/links
    let last = 0;
    let m;
    while ((m = pattern.exec(text)) !== null) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      last = pattern.lastIndex;
      if (m[1]) {
        const code = document.createElement("code");
        code.textContent = m[2];
        parent.appendChild(code);
      } else if (m[3] !== undefined) {
        const b = document.createElement("strong");
        inline(m[3], b);
        parent.appendChild(b);
      } else if (m[4] !== undefined || m[5] !== undefined) {
        const i = document.createElement("em");
        inline(m[4] !== undefined ? m[4] : m[5], i);
        parent.appendChild(i);
      } else if (m[7] !== undefined) {
        const src = safeImage(m[7]);
        if (src) {
          const img = document.createElement("img");
          img.src = src;
          img.alt = m[6];
          img.loading = "lazy";
          img.className = "figure";
          parent.appendChild(img);
        } else {
          parent.appendChild(document.createTextNode(m[0]));
        }
      } else if (m[9] !== undefined) {
        const href = safeLink(m[9]);
        if (href) {
          parent.appendChild(makeLink(href, m[8]));
        } else {
          parent.appendChild(document.createTextNode(m[8]));  // the text, without the unsafe target
        }
      } else if (m[10] !== undefined) {
        // A bare URL is its own text: shown as text, never parsed again (it would match itself forever).
        const href = safeLink(m[10]);
        parent.appendChild(href ? makeLink(href, m[10], true) : document.createTextNode(m[10]));
      }
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function makeLink(href, text, plain) {
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer nofollow";
    if (plain) {
      a.textContent = text;
    } else {
      inline(text, a);
    }
    return a;
  }

  function codeBlock(lang, code) {
    const pre = document.createElement("pre");
    const el = document.createElement("code");
    el.className = "code" + (lang ? " lang-" + lang.replace(/[^\w-]/g, "") : "");
    if (global.highlightCode) {
      el.appendChild(global.highlightCode(code, lang));
    } else {
      el.textContent = code;
    }
    pre.appendChild(el);
    return pre;
  }

  function render(text, container) {
    container.replaceChildren();
    const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
    let i = 0;
    let para = [];
    const flush = () => {
      if (para.length) {
        const p = document.createElement("p");
        para.forEach((line, k) => {
          if (k) p.appendChild(document.createElement("br"));
          inline(line, p);
        });
        container.appendChild(p);
        para = [];
      }
    };
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(/^\s*(```+|~~~+)\s*([\w+#.-]*)\s*$/);
      if (fence) {
        flush();
        const body = [];
        i++;
        while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
        i++;  // closing fence (absent while a reply still streams)
        container.appendChild(codeBlock(fence[2], body.join("\n")));
        continue;
      }
      const heading = line.match(/^(#{1,6})\s+(.*)$/);
      if (heading) {
        flush();
        const h = document.createElement("h" + Math.min(6, heading[1].length + 2));
        inline(heading[2], h);
        container.appendChild(h);
        i++;
        continue;
      }
      if (/^\s*([-*+]|\d+[.)])\s+/.test(line)) {
        flush();
        const ordered = /^\s*\d/.test(line);
        const list = document.createElement(ordered ? "ol" : "ul");
        while (i < lines.length && /^\s*([-*+]|\d+[.)])\s+/.test(lines[i])) {
          const li = document.createElement("li");
          inline(lines[i].replace(/^\s*([-*+]|\d+[.)])\s+/, ""), li);
          list.appendChild(li);
          i++;
        }
        container.appendChild(list);
        continue;
      }
      if (/^>\s?/.test(line)) {
        flush();
        const quote = document.createElement("blockquote");
        const body = [];
        while (i < lines.length && /^>\s?/.test(lines[i])) body.push(lines[i++].replace(/^>\s?/, ""));
        render(body.join("\n"), quote);
        container.appendChild(quote);
        continue;
      }
      if (!line.trim()) {
        flush();
      } else {
        para.push(line);
      }
      i++;
    }
    flush();
  }

  global.renderMarkdown = render;
  global.safeLink = safeLink;
})(window);
