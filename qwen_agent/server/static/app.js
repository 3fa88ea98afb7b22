// The chat page: talks to /v1/chat/completions (streaming) like any OpenAI client, shows tool steps from
// x_agent_event, figures, citations; keeps conversations in localStorage; one server session per conversation.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const STORE = "qwen-agent.conversations";
  const KEY = "qwen-agent.api-key";
  const state = { conversations: [], current: null, profiles: [], controller: null };

  // ---- storage ----------------------------------------------------------------------------------------------
  function load() {
    try {
      state.conversations = JSON.parse(localStorage.getItem(STORE) || "[]");
    } catch (e) {
      state.conversations = [];
    }
  }
  function save() {
    localStorage.setItem(STORE, JSON.stringify(state.conversations.slice(0, 50)));
  }
  function randomId() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  function newConversation() {
    const conv = { id: randomId(), session: randomId(), title: "New chat", profile: $("profile").value || "",
      turns: [] };
    state.conversations.unshift(conv);
    state.current = conv;
    save();
    renderSidebar();
    renderConversation();
  }

  // ---- server calls -----------------------------------------------------------------------------------------
  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = localStorage.getItem(KEY);
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }
  async function loadProfiles() {
    const r = await fetch("/v1/models", { headers: headers() });
    if (r.status === 401) {
      $("key-box").hidden = false;
      setStatus("This server needs an API key.");
      return;
    }
    const data = await r.json();
    state.profiles = data.data || [];
    const select = $("profile");
    select.replaceChildren();
    for (const p of state.profiles) {
      const opt = document.createElement("option");
      opt.value = p.id;
      opt.textContent = p.id;
      select.appendChild(opt);
    }
    if (state.current && state.current.profile) select.value = state.current.profile;
    showProfileInfo();
  }
  function showProfileInfo() {
    const p = state.profiles.find((x) => x.id === $("profile").value);
    const info = p && p.x_profile ? [p.x_profile.description, (p.x_profile.tools || []).join(", ")]
      .filter(Boolean).join(" · ") : "";
    $("profile-info").textContent = info;
  }

  // ---- rendering --------------------------------------------------------------------------------------------
  function renderSidebar() {
    const list = $("conversations");
    list.replaceChildren();
    for (const conv of state.conversations) {
      const li = document.createElement("li");
      li.className = conv === state.current ? "active" : "";
      const open = document.createElement("button");
      open.type = "button";
      open.className = "conv";
      open.textContent = conv.title;
      open.onclick = () => { state.current = conv; renderSidebar(); renderConversation(); };
      const del = document.createElement("button");
      del.type = "button";
      del.className = "del";
      del.title = "Delete";
      del.textContent = "×";
      del.onclick = () => deleteConversation(conv);
      li.append(open, del);
      list.appendChild(li);
    }
  }
  function deleteConversation(conv) {
    fetch("/v1/sessions/" + encodeURIComponent(conv.session), { method: "DELETE", headers: headers() })
      .catch(() => {});
    state.conversations = state.conversations.filter((c) => c !== conv);
    save();
    if (state.current === conv) {
      state.current = state.conversations[0] || null;
      if (!state.current) return newConversation();
    }
    renderSidebar();
    renderConversation();
  }
  function renderConversation() {
    const box = $("messages");
    box.replaceChildren();
    if (!state.current) return;
    if (state.current.profile && state.profiles.some((p) => p.id === state.current.profile)) {
      $("profile").value = state.current.profile;
      showProfileInfo();
    }
    for (const turn of state.current.turns) box.appendChild(turnView(turn));
    box.scrollTop = box.scrollHeight;
  }
  function turnView(turn) {
    const div = document.createElement("div");
    div.className = "message " + turn.role;
    div.dataset.testid = "message";
    div.dataset.role = turn.role;
    if (turn.role === "note") {
      div.textContent = turn.content;
      return div;
    }
    if (turn.role === "user") {
      const p = document.createElement("div");
      p.className = "text";
      p.textContent = turn.content;
      div.appendChild(p);
      return div;
    }
    const steps = document.createElement("div");
    steps.className = "steps";
    for (const step of turn.steps || []) steps.appendChild(stepView(step));
    if (turn.reasoning) {
      const d = document.createElement("details");
      d.className = "thinking";
      const s = document.createElement("summary");
      s.textContent = "Thinking";
      const pre = document.createElement("pre");
      pre.textContent = turn.reasoning;
      d.append(s, pre);
      steps.appendChild(d);
    }
    const answer = document.createElement("div");
    answer.className = "answer";
    answer.dataset.testid = "answer";
    window.renderMarkdown(turn.content || "", answer);
    div.append(steps, answer);
    if (turn.annotations && turn.annotations.length) div.appendChild(sourcesView(turn.annotations));
    if (turn.error) {
      const e = document.createElement("div");
      e.className = "error";
      e.dataset.testid = "error";
      e.textContent = turn.error;
      div.appendChild(e);
    }
    return div;
  }
  function stepView(step) {
    const d = document.createElement("details");
    d.className = "tool-step" + (step.is_error ? " failed" : "") + (step.done ? "" : " running");
    d.dataset.testid = "tool-step";
    const s = document.createElement("summary");
    const mark = step.done ? (step.is_error ? "✗" : "✓") : "…";
    s.textContent = `${mark} ${step.tool}` + (step.done ? ` · ${Number(step.elapsed_s || 0).toFixed(2)} s` : "");
    d.appendChild(s);
    const args = step.arguments || {};
    if (typeof args.code === "string") {
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.className = "code lang-python";
      code.appendChild(window.highlightCode(args.code, "python"));
      pre.appendChild(code);
      d.appendChild(pre);
    } else {
      const pre = document.createElement("pre");
      pre.className = "args";
      pre.textContent = JSON.stringify(args, null, 2);
      d.appendChild(pre);
    }
    if (step.done) {
      const out = document.createElement("pre");
      out.className = "result";
      out.textContent = step.result || "";
      d.appendChild(out);
    }
    return d;
  }
  function sourcesView(annotations) {
    const box = document.createElement("div");
    box.className = "sources";
    box.dataset.testid = "sources";
    box.appendChild(document.createTextNode("Sources: "));
    const seen = new Set();
    for (const a of annotations) {
      const c = a.url_citation || {};
      const href = window.safeLink(c.url || "");
      if (!href || seen.has(href)) continue;
      seen.add(href);
      const link = document.createElement("a");
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      link.textContent = c.title || c.source || href;
      box.appendChild(link);
    }
    return box;
  }
  function setStatus(text) {
    $("status").textContent = text || "";
  }

  // ---- sending ----------------------------------------------------------------------------------------------
  function apiMessages(conv) {
    const out = [];
    for (const t of conv.turns) {
      if (t.role === "user" || (t.role === "assistant" && !t.error)) out.push({ role: t.role, content: t.content });
    }
    return out;
  }
  async function send(text) {
    const conv = state.current;
    conv.profile = $("profile").value;
    if (conv.title === "New chat") conv.title = text.slice(0, 40);
    conv.turns.push({ role: "user", content: text });
    const turn = { role: "assistant", content: "", reasoning: "", steps: [], annotations: [] };
    const body = { model: conv.profile, messages: apiMessages(conv), stream: true,
      stream_options: { include_usage: true } };
    conv.turns.push(turn);
    renderSidebar();
    renderConversation();
    const controller = new AbortController();
    state.controller = controller;
    busy(true);
    let view = $("messages").lastElementChild;
    let pending = false;
    const draw = () => {
      pending = false;
      const fresh = turnView(turn);
      view.replaceWith(fresh);
      view = fresh;
      $("messages").scrollTop = $("messages").scrollHeight;
    };
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { if (pending) draw(); });
    };
    try {
      const r = await fetch("/v1/chat/completions", {
        method: "POST", signal: controller.signal, body: JSON.stringify(body),
        headers: headers({ "Content-Type": "application/json", "X-Session-Id": conv.session }),
      });
      if (!r.ok) {
        const err = await r.json().catch(() => ({}));
        throw new Error((err.error && err.error.message) || `HTTP ${r.status}`);
      }
      await readStream(r, (chunk) => {
        if (chunk.error) throw new Error(chunk.error.message || "the run failed");
        const ev = chunk.x_agent_event;
        if (ev && ev.type === "tool_call") {
          turn.steps.push({ call_id: ev.call_id, tool: ev.tool, arguments: ev.arguments, done: false });
        } else if (ev && ev.type === "tool_result") {
          const step = turn.steps.find((s) => s.call_id === ev.call_id);
          if (step) Object.assign(step, ev, { done: true });
        }
        for (const choice of chunk.choices || []) {
          const d = choice.delta || {};
          if (d.content) turn.content += d.content;
          if (!ev && d.reasoning_content) turn.reasoning += d.reasoning_content;
          if (d.annotations) turn.annotations.push(...d.annotations);
        }
        redraw();
      });
      setStatus("");
    } catch (e) {
      if (e.name === "AbortError") {
        turn.error = "Stopped.";
        setStatus("Stopped.");
      } else {
        turn.error = "Error: " + e.message;
        setStatus("");
      }
    } finally {
      draw();  // the final state now, not at the next animation frame
      state.controller = null;
      busy(false);
      save();
    }
  }
  async function readStream(response, onChunk) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return;
          onChunk(JSON.parse(data));
        }
      }
    }
  }
  function busy(on) {
    $("send").hidden = on;
    $("stop").hidden = !on;
    $("input").disabled = on;
    document.body.classList.toggle("busy", on);
    if (on) setStatus("Working…");
  }
  async function upload(file) {
    const conv = state.current;
    setStatus("Uploading " + file.name + "…");
    const r = await fetch("/v1/files?filename=" + encodeURIComponent(file.name), {
      method: "POST", body: file,
      headers: headers({ "X-Session-Id": conv.session, "Content-Type": "application/octet-stream" }),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      setStatus("Upload failed: " + ((data.error && data.error.message) || r.status));
      return;
    }
    let note = `Uploaded ${data.filename} (${data.bytes} bytes) into this session.`;
    if ((data.x_indexed_for || []).length) note += ` Indexed for ${data.x_indexed_for.join(", ")}: ask about it.`;
    if ((data.x_index_errors || []).length) note += ` It could not be read as a document: ${data.x_index_errors[0]}`;
    conv.turns.push({ role: "note", content: note });
    save();
    renderConversation();
    setStatus("");
  }

  // ---- wiring -----------------------------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", async () => {
    load();
    $("api-key").value = localStorage.getItem(KEY) || "";
    $("api-key").addEventListener("change", (e) => {
      localStorage.setItem(KEY, e.target.value.trim());
      loadProfiles();
    });
    await loadProfiles().catch((e) => setStatus("Cannot reach the server: " + e.message));
    state.current = state.conversations[0] || null;
    if (!state.current) newConversation();
    renderSidebar();
    renderConversation();
    $("profile").addEventListener("change", () => {
      showProfileInfo();
      if (state.current) { state.current.profile = $("profile").value; save(); }
    });
    $("new-chat").addEventListener("click", newConversation);
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      const text = $("input").value.trim();
      if (!text || state.controller) return;
      $("input").value = "";
      send(text);
    });
    $("input").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        $("composer").requestSubmit();
      }
    });
    $("stop").addEventListener("click", () => state.controller && state.controller.abort());
    $("upload").addEventListener("change", (e) => {
      const file = e.target.files[0];
      e.target.value = "";
      if (file) upload(file);
    });
    document.body.dataset.ready = "1";
  });
})();
