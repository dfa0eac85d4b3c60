// llmgine-otel view: draws the embedded traces; all data goes into the page as text, never HTML.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("trace-data").textContent);
  const tracesEl = document.getElementById("traces");
  const detail = document.getElementById("detail");
  const LLM = new Set(["chat", "text_completion", "generate_content", "embeddings"]);
  const KINDS = ["unspecified", "internal", "server", "client", "producer", "consumer"];
  const OPEN_ALL_UP_TO = 3000; // spans; beyond that only the first trace opens at load
  let selected = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fmtMs(ms) {
    if (ms < 1) return Math.round(ms * 1000) + "µs";
    if (ms < 1000) return ms.toFixed(1) + "ms";
    if (ms < 60000) return (ms / 1000).toFixed(3) + "s";
    if (ms < 3600000) {
      const m = Math.floor(ms / 60000);
      return m + "m" + ((ms - m * 60000) / 1000).toFixed(1) + "s";
    }
    const s = Math.round(ms / 1000), h = Math.floor(s / 3600), r = s - h * 3600;
    const pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return h + "h" + pad(Math.floor(r / 60)) + "m" + pad(r % 60) + "s";
  }

  function fmtCost(usd) {
    if (usd === null || usd === undefined) return "";
    if (usd >= 1) return "$" + usd.toFixed(2);
    if (usd >= 0.01) return "$" + usd.toFixed(4);
    if (usd >= 0.000001) return "$" + usd.toFixed(6);
    return usd === 0 ? "$0" : "<$0.000001";
  }

  function fmtTime(ns) {
    return new Date(Math.round(ns / 1e6)).toISOString().replace("T", " ");
  }

  function show(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function kindOf(span) {
    const op = span.attributes["gen_ai.operation.name"];
    if (span.status_code === 2) return "err";
    if (LLM.has(op)) return "llm";
    if (op === "execute_tool") return "tool";
    if (op === "invoke_agent") return "agent";
    return "";
  }

  function extraOf(span) {
    const a = span.attributes;
    const parts = [];
    if (LLM.has(a["gen_ai.operation.name"])) {
      const model = a["gen_ai.response.model"] || a["gen_ai.request.model"];
      if (model) parts.push(model);
      const i = a["gen_ai.usage.input_tokens"], o = a["gen_ai.usage.output_tokens"];
      if (i !== undefined || o !== undefined) parts.push((i || 0) + "→" + (o || 0) + " tok");
      if (span.cost_usd !== null) parts.push(fmtCost(span.cost_usd));
    }
    return parts.join(" · ");
  }

  function kvTable(obj, keepOrder) {
    const keys = Object.keys(obj || {});
    if (!keys.length) return el("p", "none", "none");
    const table = el("table", "kv");
    for (const key of keepOrder ? keys : keys.sort()) {
      const tr = el("tr");
      tr.appendChild(el("td", null, key));
      tr.appendChild(el("td", null, show(obj[key])));
      table.appendChild(tr);
    }
    return table;
  }

  function showDetail(trace, span) {
    detail.replaceChildren();
    detail.appendChild(el("h2", null, span.name));
    const facts = {
      "trace id": trace.trace_id,
      "span id": span.span_id,
      "parent span id": span.parent_span_id || "(root)",
      kind: KINDS[span.kind] || span.kind,
      start: fmtTime(span.start_ns),
      duration: fmtMs(span.duration_ms),
      status: ["UNSET", "OK", "ERROR"][span.status_code] || span.status_code,
    };
    if (span.status_message) facts["status message"] = span.status_message;
    if (span.cost_usd !== null) facts["cost"] = fmtCost(span.cost_usd);
    if (span.parent_missing) facts["note"] = "parent span never arrived";
    if (span.scope) facts["scope"] = span.scope;
    const table = kvTable(facts, true);
    if (span.status_code === 2) table.classList.add("has-error");
    detail.appendChild(table);
    detail.appendChild(el("h3", null, "Attributes"));
    const attrs = kvTable(span.attributes);
    attrs.id = "detail-attributes";
    detail.appendChild(attrs);
    if (span.events.length) {
      detail.appendChild(el("h3", null, "Events"));
      for (const ev of span.events) {
        const box = el("div", "log");
        box.appendChild(el("div", "log-head", ev.name));
        box.appendChild(kvTable(ev.attributes));
        detail.appendChild(box);
      }
    }
    detail.appendChild(el("h3", null, "Log records (" + span.logs.length + ")"));
    const logs = el("div");
    logs.id = "detail-logs";
    if (!span.logs.length) logs.appendChild(el("p", "none", "none"));
    for (const log of span.logs) {
      const box = el("div", "log");
      const head = el("div", "log-head");
      head.appendChild(el("b", null, log.event_name || "(no event name)"));
      head.appendChild(el("span", "sev", log.severity_text || ""));
      head.appendChild(el("span", "sev", fmtTime(log.time_ns)));
      box.appendChild(head);
      if (log.body !== null && log.body !== undefined) box.appendChild(el("pre", null, show(log.body)));
      if (Object.keys(log.attributes).length) box.appendChild(kvTable(log.attributes));
      logs.appendChild(box);
    }
    detail.appendChild(logs);
  }

  function setVisibility(rows) {
    let cut = Infinity; // depth of the collapsed row whose subtree is being hidden
    for (const row of rows) {
      if (row.depth <= cut) cut = Infinity;
      const hidden = row.depth > cut;
      row.el.classList.toggle("hidden", hidden);
      if (!hidden && row.collapsed) cut = row.depth;
    }
  }

  function drawRows(trace, container) {
    const total = Math.max(trace.duration_ms, 1e-6);
    const axis = el("div", "axis");
    axis.appendChild(el("div", null, "span"));
    const ticks = el("div", "ticks");
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const t = el("span", null, fmtMs(total * f));
      t.style.left = f * 100 + "%";
      ticks.appendChild(t);
    }
    axis.appendChild(ticks);
    axis.appendChild(el("div", "dur", "duration"));
    container.appendChild(axis);
    const rows = [];
    trace.spans.forEach(function (span, i) {
      const next = trace.spans[i + 1];
      const hasChildren = next !== undefined && next.depth > span.depth;
      const row = el("div", "row" + (span.status_code === 2 ? " error" : ""));
      row.tabIndex = 0;
      row.dataset.spanId = span.span_id;
      row.dataset.traceId = trace.trace_id;
      const label = el("div", "label");
      label.style.paddingLeft = span.depth * 14 + "px";
      const caret = el("button", "caret" + (hasChildren ? "" : " leaf"), "▼");
      caret.type = "button";
      caret.setAttribute("aria-label", "collapse or expand");
      label.appendChild(caret);
      label.appendChild(el("span", "name", span.name));
      if (span.parent_missing) label.appendChild(el("span", "missing", "(parent missing)"));
      const extra = extraOf(span);
      if (extra) label.appendChild(el("span", "extra", extra));
      label.title = span.name + (extra ? " · " + extra : "");
      row.appendChild(label);
      const track = el("div", "track");
      const bar = el("div", "bar " + kindOf(span));
      bar.style.left = (100 * span.offset_ms) / total + "%";
      bar.style.width = (100 * span.duration_ms) / total + "%";
      track.appendChild(bar);
      row.appendChild(track);
      row.appendChild(el("div", "dur", fmtMs(span.duration_ms)));
      const entry = { el: row, depth: span.depth, collapsed: false };
      rows.push(entry);
      caret.addEventListener("click", function (event) {
        event.stopPropagation();
        entry.collapsed = !entry.collapsed;
        caret.textContent = entry.collapsed ? "▶" : "▼";
        setVisibility(rows);
      });
      function select() {
        if (selected) selected.classList.remove("selected");
        selected = row;
        row.classList.add("selected");
        showDetail(trace, span);
      }
      row.addEventListener("click", select);
      row.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          select();
        }
      });
      container.appendChild(row);
    });
  }

  function drawTrace(trace, open, parent) {
    const box = el("details", "trace");
    box.dataset.traceId = trace.trace_id;
    const summary = el("summary");
    summary.appendChild(el("span", "t-name", trace.name));
    const err = trace.errors > 0;
    summary.appendChild(
      el("span", "badge " + (err ? "err" : "ok"), err ? "ERROR ×" + trace.errors : "OK"));
    const facts = [fmtMs(trace.duration_ms), trace.span_count + " spans"];
    if (trace.session_id) facts.unshift("session " + trace.session_id);
    if (trace.llm_calls) facts.push(trace.llm_calls + (trace.llm_calls === 1 ? " LLM call" : " LLM calls"));
    if (trace.input_tokens || trace.output_tokens) {
      facts.push(trace.input_tokens + " in / " + trace.output_tokens + " out tokens");
    }
    if (trace.cost_usd !== null) facts.push(fmtCost(trace.cost_usd));
    if (trace.missing_parents) facts.push(trace.missing_parents + " with parent missing");
    summary.appendChild(el("span", "t-facts", facts.join(" · ")));
    summary.appendChild(el("span", "t-id", trace.trace_id));
    box.appendChild(summary);
    const rows = el("div", "rows");
    box.appendChild(rows);
    let drawn = false;
    function ensure() {
      if (!drawn && box.open) {
        drawn = true;
        drawRows(trace, rows);
      }
    }
    box.addEventListener("toggle", ensure);
    box.open = open;
    ensure();
    parent.appendChild(box);
  }

  // A session traced as several traces (one per command): its traces under one header.
  function drawSession(session) {
    const box = el("section", "session" + (session.errors > 0 ? " error" : ""));
    box.dataset.sessionId = session.session_id;
    const head = el("div", "s-head");
    head.appendChild(el("span", "s-name", "session " + session.session_id));
    const err = session.errors > 0;
    head.appendChild(
      el("span", "badge " + (err ? "err" : "ok"), err ? "ERROR ×" + session.errors : "OK"));
    const facts = [
      session.trace_ids.length + " traces",
      fmtTime(session.start_ns),
      fmtMs(session.duration_ms),
      session.commands + (session.commands === 1 ? " command" : " commands"),
      session.span_count + " spans",
    ];
    if (session.llm_calls) {
      facts.push(session.llm_calls + (session.llm_calls === 1 ? " LLM call" : " LLM calls"));
    }
    if (session.input_tokens || session.output_tokens) {
      facts.push(session.input_tokens + " in / " + session.output_tokens + " out tokens");
    }
    if (session.cost_usd !== null) facts.push(fmtCost(session.cost_usd));
    head.appendChild(el("span", "t-facts", facts.join(" · ")));
    box.appendChild(head);
    tracesEl.appendChild(box);
    return box;
  }

  const byId = {};
  data.traces.forEach(function (trace) { byId[trace.trace_id] = trace; });
  const totalSpans = data.traces.reduce(function (n, t) { return n + t.spans.length; }, 0);
  let drawnTraces = 0;
  data.sessions.forEach(function (session) {
    const parent = session.trace_ids.length > 1 ? drawSession(session) : tracesEl;
    session.trace_ids.forEach(function (id) {
      drawTrace(byId[id], totalSpans <= OPEN_ALL_UP_TO || drawnTraces === 0, parent);
      drawnTraces += 1;
    });
  });
  document.body.dataset.ready = "1";
})();
