// The keychain-auth window's behaviour: reads the daemon's state through the app's Tauri
// commands, renders it, and sends the person's decisions back. Paths, names and reasons
// come from programs on this machine and may be hostile, so text is only ever set with
// textContent, never parsed as HTML.
"use strict";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "onclick") e.addEventListener("click", v);
    else e[k] = v;
  }
  for (const c of children) if (c) e.append(c);
  return e;
}

function showError(message) {
  const p = $("error");
  p.textContent = message || "";
  p.hidden = !message;
}

async function act(command, args) {
  try {
    await invoke(command, args);
    showError("");
  } catch (e) {
    showError(String(e));
    // Controls may show a change that did not happen: draw them again from the daemon.
    shown.pending = shown.tools = shown.denied = null;
  }
  await refresh();
}

// Text that may break after each `/` (a long path wraps at its directories): text
// nodes with an empty <wbr> element after each slash, never markup parsed from it.
function breakable(text) {
  const f = document.createDocumentFragment();
  const parts = String(text || "").split("/");
  parts.forEach((part, i) => {
    f.append(document.createTextNode(part + (i < parts.length - 1 ? "/" : "")));
    if (i < parts.length - 1) f.append(document.createElement("wbr"));
  });
  return f;
}

function shortHash(h) {
  return h.length > 19 ? h.slice(0, 19) + "…" : h;
}

function baseName(p) {
  return (p || "").split("/").pop();
}

function copyButton(text) {
  return el("button", {
    type: "button",
    class: "copy",
    text: "Copy",
    title: "Copy " + text,
    onclick: async (ev) => {
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const t = el("textarea", { value: text });
        document.body.append(t);
        t.select();
        document.execCommand("copy");
        t.remove();
      }
      ev.target.textContent = "Copied";
      setTimeout(() => (ev.target.textContent = "Copy"), 1200);
    },
  });
}

// A button that asks for a second click within 4 s before it acts (no modal dialog).
// The first click is remembered by `key`, so a re-render of the section in between (a
// new audit line, the store's names) keeps the button armed.
const armedUntil = new Map();
function twoStep(cls, label, armedLabel, key, action) {
  const b = el("button", { type: "button", class: cls, text: label });
  const arm = (until) => {
    b.textContent = armedLabel;
    b.classList.add("armed");
    setTimeout(() => {
      if ((armedUntil.get(key) || 0) <= Date.now()) {
        armedUntil.delete(key);
        b.textContent = label;
        b.classList.remove("armed");
      }
    }, Math.max(0, until - Date.now()) + 10);
  };
  const until = armedUntil.get(key) || 0;
  if (until > Date.now()) arm(until);
  b.addEventListener("click", () => {
    if ((armedUntil.get(key) || 0) > Date.now()) {
      armedUntil.delete(key);
      action();
      return;
    }
    const until = Date.now() + 4000;
    armedUntil.set(key, until);
    arm(until);
  });
  return b;
}

function hashCell(h) {
  return el("td", { class: "hash" }, el("code", { text: shortHash(h), title: h }), " ", copyButton(h));
}

function renderPending(pending, grantsByHash) {
  const rows = $("pending-rows");
  rows.replaceChildren();
  $("pending-count").textContent = `(${pending.length})`;
  if (pending.length === 0) {
    rows.append(el("tr", {}, el("td", { colSpan: 6, class: "muted", text: "Nothing is waiting." })));
    return;
  }
  for (const p of [...pending].reverse()) {
    const who = p.script ? `${p.script.path} (script run by ${p.script.interpreter})` : p.path;
    const libs = (p.libraries || []).map((l) => l.path).join(", ");
    const warn = (libs ? `Runs code from files you can change: ${libs}. Approving pins them. ` : "") +
      (p.script
        ? "A script's identity is advisory: it is read from the process's own command line."
        : p.interpreter
          ? "A script interpreter: it is never approved as a whole."
          : "");
    // Exactly the patterns approving grants, as the daemon computes them (a name such as
    // demo/* is shown as the literal pattern demo/\* it would grant).
    const grants = (grantsByHash[p.hash] || []).join(", ");
    // An update of an approved tool is offered as Keep access (re-pin that tool to this
    // exact binary), not as a second approval.
    const update = p.update_of;
    const canApprove = !(p.interpreter && !p.script) && !update;
    rows.append(
      el(
        "tr",
        { "data-hash": p.hash, class: "pending" },
        el(
          "td",
          { class: "path" },
          el("div", {}, breakable(who)),
          update ? el("div", { class: "update", text: `Update of ${update.label}: ${shortHash(update.hash)} → ${shortHash(p.hash)}. Keep access re-pins it with the scopes and access it had.` }) : null,
          p.chain ? el("div", { class: "chain", text: `asked via ${p.chain}` }) : null,
          p.terminal ? el("div", { class: "warn", text: `A terminal session (${p.terminal}): approving it approves every shell in a terminal of this program, and every program started from one.` }) : null,
          warn ? el("div", { class: "warn", text: warn }) : null,
        ),
        hashCell(p.hash),
        el("td", { text: p.names.join(", ") }),
        // Approving grants the access it asked for in its hello, else read.
        el("td", { class: "grants" }, breakable(grants), " ", el("span", { class: "access", text: `(${p.requested_access || "read"})` })),
        el("td", { text: `${p.attempts}× · ${p.last_seen}` }),
        el(
          "td",
          { class: "actions" },
          update ? el("button", { type: "button", class: "keep", text: "Keep access", onclick: () => act("keep_access", { hash: p.hash }) }) : null,
          canApprove ? el("button", { type: "button", class: "approve", text: "Approve", onclick: () => act("approve", { hash: p.hash }) }) : null,
          canApprove ? el("button", { type: "button", class: "hour", text: "For 1 hour", onclick: () => act("approve", { hash: p.hash, lasts: "hour" }) }) : null,
          canApprove ? el("button", { type: "button", class: "logout", text: "Until logout", onclick: () => act("approve", { hash: p.hash, lasts: "logout" }) }) : null,
          canApprove || update ? el("button", { type: "button", class: "once", text: "Allow once", onclick: () => act("allow_once", { hash: p.hash }) }) : null,
          el("button", { type: "button", class: "deny", text: "Deny", onclick: () => act("deny", { hash: p.hash }) }),
        ),
      ),
    );
  }
}

function renderTools(tools, names, boxesByHash) {
  const box = $("tools");
  box.replaceChildren();
  $("tools-count").textContent = `(${tools.length})`;
  if (tools.length === 0) {
    box.append(el("p", { class: "muted", text: "No tool is approved yet." }));
    return;
  }
  for (const t of tools) {
    const exact = new Set(t.scopes.filter((s) => !s.includes("*")));
    const patterns = t.scopes.filter((s) => s.includes("*"));
    const checks = el("div", { class: "names" });
    const boxes = boxesByHash[t.hash] || {};
    for (const n of names) {
      // The tray menu's rule, computed by the app: ticked when an exact scope or a
      // pattern covers the name; greyed when only a pattern does (edit the patterns).
      const b = boxes[n] || { literal: n, exact: exact.has(n), pattern: null };
      const byPattern = !b.exact && b.pattern;
      const box = el("input", { type: "checkbox", checked: b.exact || !!b.pattern, disabled: !!byPattern, "data-name": n });
      box.addEventListener("change", () => {
        const next = t.scopes.filter((s) => s !== b.literal);
        if (box.checked) next.push(b.literal);
        act("set_scopes", { hash: t.hash, scopes: next });
      });
      const label = el("label", { class: byPattern ? "name by-pattern" : "name" }, box, " ", n);
      if (byPattern) label.title = `Covered by the pattern ${b.pattern}: edit the patterns below to change it`;
      else if (b.pattern) label.title = `Also covered by the pattern ${b.pattern}`;
      checks.append(label);
    }
    if (names.length === 0) checks.append(el("span", { class: "muted", text: "No secret is stored yet." }));
    const patternInput = el("input", { type: "text", value: patterns.join(", "), placeholder: "patterns, e.g. git/*", class: "patterns" });
    const savePatterns = el("button", {
      type: "button",
      text: "Save patterns",
      onclick: () => {
        const next = [...exact, ...patternInput.value.split(",").map((s) => s.trim()).filter(Boolean)];
        act("set_scopes", { hash: t.hash, scopes: next });
      },
    });
    box.append(
      el(
        "article",
        { class: "tool", "data-hash": t.hash },
        el("h3", { text: t.label }),
        el(
          "p",
          {},
          el("span", { class: "path" }, breakable(t.script ? `${t.script.path} (run by ${t.script.interpreter})` : t.path)),
          " · ",
          el("span", { class: "access", text: t.access }),
          " · ",
          el("span", { class: "approved", text: `approved ${t.approved_at} via ${t.approved_via}` }),
          t.upgraded_at ? " · " : null,
          t.upgraded_at ? el("span", { class: "upgraded", text: `upgraded ${t.upgraded_at} via ${t.upgraded_via || "?"}` }) : null,
          " · ",
          el("span", { class: "lasts", text: t.expires_at ? `until ${t.expires_at}` : t.until_logout ? "until logout" : "always" }),
        ),
        el("p", { class: "hash" }, el("code", { text: t.hash }), " ", copyButton(t.hash)),
        checks,
        el("p", {}, patternInput, " ", savePatterns),
        el(
          "p",
          { class: "actions" },
          el("button", { type: "button", class: "upgrade", text: "Upgrade (re-pin to the file as it is now)", onclick: () => act("upgrade", { path: t.script ? t.script.path : t.path }) }),
          twoStep("revoke", "Revoke", `Click again to revoke ${t.label}`, `revoke:${t.hash}`, () => act("revoke", { hash: t.hash })),
        ),
      ),
    );
  }
}

// Denied programs, a script as the script, each with a two-step Undeny.
function renderDenied(denied) {
  const rows = $("denied-rows");
  rows.replaceChildren();
  $("denied-count").textContent = `(${denied.length})`;
  if (denied.length === 0) {
    rows.append(el("tr", {}, el("td", { colSpan: 4, class: "muted", text: "Nothing is denied." })));
    return;
  }
  for (const d of denied) {
    const who = d.script ? `${d.script.path} (script run by ${d.script.interpreter})` : d.path || "(denied by hash)";
    rows.append(
      el(
        "tr",
        { "data-hash": d.hash, class: "denied" },
        el("td", { class: "path" }, breakable(who)),
        hashCell(d.hash),
        el("td", { class: "time", text: d.at.replace("T", " ").replace("Z", "") }),
        el(
          "td",
          { class: "actions" },
          twoStep("undeny", "Undeny", `Click again to undeny ${baseName(d.script ? d.script.path : d.path) || shortHash(d.hash)}`, `undeny:${d.hash}`, () => act("undeny", { hash: d.hash })),
        ),
      ),
    );
  }
}

function query() {
  return {
    text: $("filter-text").value,
    tool: $("filter-tool").value,
    secret: $("filter-secret").value,
    decision: $("filter-decision").value,
    since: $("filter-since").value.replace(" ", "T"),
    until: $("filter-until").value.replace(" ", "T"),
  };
}

async function renderHistory() {
  let records;
  try {
    records = await invoke("history", { query: query() });
  } catch (e) {
    showError(String(e));
    return;
  }
  const rows = $("history-rows");
  rows.replaceChildren();
  $("history-count").textContent = `${records.length} event${records.length === 1 ? "" : "s"}${records.length >= 1000 ? " (newest 1000)" : ""}`;
  for (const r of records) {
    rows.append(
      el(
        "tr",
        { class: `decision-${r.decision}`, "data-seq": String(r.seq) },
        el("td", { class: "time", text: r.time.replace("T", " ").replace("Z", "") }),
        el("td", { text: r.event + (r.op ? ` ${r.op}` : "") }),
        el("td", { class: "decision", text: r.decision }),
        el("td", { text: baseName(r.path), title: [r.path, r.hash].filter(Boolean).join("\n") }),
        el("td", { class: "secrets", text: (r.names || []).join(", ") }),
        el("td", { class: "reason" }, breakable(r.reason)),
        el("td", { class: "via", text: r.via || "" }),
      ),
    );
  }
}

async function refresh() {
  let s;
  try {
    s = await invoke("snapshot");
  } catch (e) {
    showError(String(e));
    return;
  }
  $("status").textContent = `store: ${s.store} · socket: ${s.socket}` + (s.names_error ? ` · store error: ${s.names_error}` : "") + (s.ptrace_warning ? ` · Warning: ${s.ptrace_warning}` : "");
  // Below the header, not in it: it is long, and the header stays on top of the page.
  $("presence-warning").textContent = s.presence_warning ? `Proof of presence: ${s.presence_warning}` : "";
  $("presence-warning").hidden = !s.presence_warning;
  // The whole of it (and what to do) on hover; `keychain-auth status` prints it too.
  $("status").title = s.ptrace;
  const pause = $("pause");
  pause.textContent = s.paused ? "Resume (paused: every request is refused)" : "Pause (deny all new requests)";
  pause.classList.toggle("paused", s.paused);
  pause.onclick = () => act("set_paused", { paused: !s.paused });
  // Re-render a section only when its data changed, so a field being edited or a
  // button armed for a second click is not replaced by every new audit line.
  const pendingKey = JSON.stringify([s.pending, s.grants]);
  if (pendingKey !== shown.pending) {
    shown.pending = pendingKey;
    renderPending(s.pending, s.grants || {});
  }
  const toolsKey = JSON.stringify([s.tools, s.names, s.boxes]);
  if (toolsKey !== shown.tools) {
    shown.tools = toolsKey;
    renderTools(s.tools, s.names, s.boxes || {});
  }
  const deniedKey = JSON.stringify(s.denied || []);
  if (deniedKey !== shown.denied) {
    shown.denied = deniedKey;
    renderDenied(s.denied || []);
  }
  await renderHistory();
}

const shown = { pending: null, tools: null, denied: null };

let timer = null;
function refreshSoon() {
  clearTimeout(timer);
  timer = setTimeout(refresh, 150);
}

for (const id of ["filter-text", "filter-tool", "filter-secret", "filter-since", "filter-until"]) {
  $(id).addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(renderHistory, 150);
  });
}
$("filter-decision").addEventListener("change", renderHistory);
$("filters").addEventListener("reset", () => setTimeout(renderHistory, 0));
$("filters").addEventListener("submit", (e) => e.preventDefault());

listen("changed", refreshSoon);
refresh();
