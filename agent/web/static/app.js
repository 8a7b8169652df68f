// The pairing page. Everything that came from a device or a user (names, models, errors) is
// put on the page with textContent, never as HTML.
"use strict";

(function () {
  const POLL_MS = 3000;
  const THUMB_MS = 10000;
  let csrf = "";
  let pollTimer = 0;
  let lastThumb = 0;
  let cameras = [];
  const cards = new Map(); // camera_id -> {el, cam}

  const $ = (id) => document.getElementById(id);

  class APIError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // api calls the JSON API; state changes carry the CSRF token.
  async function api(method, path, body) {
    const opts = { method, headers: {}, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new APIError(0, "The gateway does not answer. Is this phone on its network?");
    }
    if (res.status === 401 && path !== "/api/login") {
      showLogin();
      throw new APIError(401, "Please log in again.");
    }
    if (res.status === 204) return null;
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("application/json")) {
      if (!res.ok) throw new APIError(res.status, "The gateway answered " + res.status + ".");
      return res;
    }
    const data = await res.json();
    if (!res.ok) throw new APIError(res.status, data.error || "The gateway answered " + res.status + ".");
    return data;
  }

  function say(el, text, ok) {
    el.textContent = text || "";
    el.classList.toggle("ok", !!ok);
    el.classList.toggle("error", !ok);
  }

  // ---- login ----

  function showLogin() {
    stopPolling();
    csrf = "";
    $("app-view").hidden = true;
    $("logout").hidden = true;
    $("login-view").hidden = false;
    $("login-code").focus();
  }

  function showApp() {
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    $("logout").hidden = false;
    startPolling();
    loadConnection();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    say($("login-error"), "");
    try {
      const s = await api("POST", "/api/login", { code: $("login-code").value });
      csrf = s.csrf_token;
      $("login-code").value = "";
      showApp();
    } catch (e) {
      say($("login-error"), e.message);
    }
  });

  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* logged out either way */ }
    showLogin();
  });

  // ---- status ----

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s || 0));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + m + " min";
    return m + " min " + (s % 60) + " s";
  }

  function fmtBytes(n) {
    if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " MiB";
    if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + " KiB";
    return n + " B";
  }

  function fmtBitrate(bps) {
    if (!bps) return "";
    if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " Mbit/s";
    return Math.round(bps / 1e3) + " kbit/s";
  }

  const LINK_TEXT = { up: "connected", connecting: "connecting…", down: "down", unconfigured: "not set up" };

  function setLink(badge, errEl, link) {
    const state = (link && link.state) || "unconfigured";
    badge.textContent = LINK_TEXT[state] || state;
    badge.dataset.state = state;
    errEl.textContent = (link && link.last_error) || "";
  }

  function renderStatus(st) {
    $("st-id").textContent = st.gateway_id;
    $("gw-name").textContent = st.gateway_id;
    $("st-version").textContent = st.version;
    $("st-uptime").textContent = fmtDuration(st.uptime_s);
    setLink($("st-mqtt"), $("st-mqtt-err"), st.mqtt);
    setLink($("st-flu"), $("st-flu-err"), st.flussonic);
    $("st-cams").textContent = st.cameras + " added, " + st.relaying + " relaying";
    let q = st.outbox_depth + " waiting (" + fmtBytes(st.outbox_bytes || 0) + ")";
    if (st.outbox_drops) q += ", " + st.outbox_drops + " dropped";
    $("st-queue").textContent = q;
  }

  // ---- cameras ----

  function camState(c) {
    if (c.state === "discovered") return ["found", "discovered"];
    if (!c.enabled) return ["disabled", "disabled"];
    if (c.relaying) return ["relaying", "relaying"];
    if (c.online) return ["online, not relaying", "online"];
    return ["offline", "offline"];
  }

  function newCard(id) {
    const el = $("camera-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.id = id;
    const card = { el, cam: null };
    const q = (sel) => el.querySelector(sel);

    q(".copy").addEventListener("click", () => copyText(card.cam.agent_id, q(".copy")));
    q(".act-add").addEventListener("click", () => pickForAdd(card.cam));
    q(".act-toggle").addEventListener("click", () => patch(card, { enabled: !card.cam.enabled }));
    q(".act-rename").addEventListener("click", () => {
      const f = q(".rename");
      f.hidden = false;
      f.querySelector("input").value = card.cam.name;
      f.querySelector("input").focus();
    });
    q(".rename .cancel").addEventListener("click", () => { q(".rename").hidden = true; });
    q(".rename").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      await patch(card, { name: q(".rename input").value });
      q(".rename").hidden = true;
    });
    // Two clicks instead of a dialog: works the same on every phone.
    let armed = 0;
    q(".act-remove").addEventListener("click", async () => {
      const b = q(".act-remove");
      if (!armed) {
        b.textContent = "Tap again to remove";
        armed = setTimeout(() => { armed = 0; b.textContent = "Remove"; }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      b.textContent = "Remove";
      try {
        await api("DELETE", "/api/cameras/" + encodeURIComponent(card.cam.camera_id));
        refresh();
      } catch (e) {
        say(q(".cam-error"), e.message);
      }
    });
    q(".thumb img").addEventListener("error", () => { q(".thumb img").hidden = true; q(".nothumb").hidden = false; });
    q(".thumb img").addEventListener("load", () => { q(".thumb img").hidden = false; q(".nothumb").hidden = true; });
    return card;
  }

  async function patch(card, body) {
    try {
      const cam = await api("PATCH", "/api/cameras/" + encodeURIComponent(card.cam.camera_id), body);
      updateCard(card, cam, true);
    } catch (e) {
      say(card.el.querySelector(".cam-error"), e.message);
    }
  }

  function updateCard(card, c, thumbs) {
    card.cam = c;
    const q = (sel) => card.el.querySelector(sel);
    q(".cam-name").textContent = c.name || c.ip || c.camera_id;
    const [text, cls] = camState(c);
    q(".cam-state").textContent = text;
    q(".cam-state").dataset.state = cls;
    q(".cam-model").textContent = [c.vendor, c.model, c.ip].filter(Boolean).join(" · ");
    const media = [];
    if (c.codec) media.push(c.codec);
    if (c.width && c.height) media.push(c.width + "×" + c.height);
    if (c.relaying && c.bitrate_bps) media.push(fmtBitrate(c.bitrate_bps));
    if (c.needs_credentials) media.push("needs user name and password");
    q(".cam-media").textContent = media.join(" · ");
    const added = c.state === "added";
    q(".agent").hidden = !added || !c.agent_id;
    q(".agent-id").textContent = c.agent_id || "";
    q(".cam-error").textContent = c.last_error || "";
    q(".act-add").hidden = added;
    q(".act-toggle").hidden = !added;
    q(".act-toggle").textContent = c.enabled ? "Disable" : "Enable";
    q(".act-rename").hidden = !added;
    q(".act-remove").hidden = !added;
    const img = q(".thumb img");
    q(".thumb").classList.toggle("empty", !c.has_snapshot);
    if (!c.has_snapshot) {
      img.hidden = true;
      img.removeAttribute("src");
      q(".nothumb").hidden = false;
    } else if (thumbs || !img.getAttribute("src")) {
      img.src = "/api/cameras/" + encodeURIComponent(c.camera_id) + "/snapshot.jpg?t=" + Date.now();
    }
  }

  function renderCameras(list) {
    cameras = list;
    // Added cameras first, then discovered ones, each by name.
    list.sort((a, b) => (a.state === b.state ? 0 : a.state === "added" ? -1 : 1) ||
      (a.name || "").localeCompare(b.name || ""));
    const now = Date.now();
    const thumbs = now - lastThumb >= THUMB_MS;
    if (thumbs) lastThumb = now;
    const seen = new Set();
    const box = $("cameras");
    for (const c of list) {
      seen.add(c.camera_id);
      let card = cards.get(c.camera_id);
      if (!card) {
        card = newCard(c.camera_id);
        cards.set(c.camera_id, card);
      }
      updateCard(card, c, thumbs);
      box.appendChild(card.el); // keeps the order; moves an existing node
    }
    for (const [id, card] of cards) {
      if (!seen.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    }
    $("cams-empty").hidden = list.length > 0;
    fillPicker();
  }

  function fillPicker() {
    const sel = $("add-pick");
    const keep = sel.value;
    const found = cameras.filter((c) => c.state === "discovered");
    sel.replaceChildren();
    if (!found.length) {
      const o = document.createElement("option");
      o.value = "";
      o.textContent = "no discovered cameras: scan the network";
      sel.appendChild(o);
    }
    for (const c of found) {
      const o = document.createElement("option");
      o.value = c.camera_id;
      o.textContent = [c.name, c.vendor, c.model, c.ip].filter(Boolean).join(" · ");
      sel.appendChild(o);
    }
    if (found.some((c) => c.camera_id === keep)) sel.value = keep;
  }

  function pickForAdd(c) {
    document.querySelector('input[name="mode"][value="discovered"]').checked = true;
    setMode();
    $("add-pick").value = c.camera_id;
    $("add-name").value = c.name || "";
    $("add-card").scrollIntoView({ behavior: "smooth" });
    $("add-pass").focus();
  }

  async function copyText(text, btn) {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch (e) {
      // Plain http on the LAN is not a secure context: fall back to a selected text field.
      const t = document.createElement("textarea");
      t.value = text;
      t.setAttribute("readonly", "");
      t.className = "offscreen";
      document.body.appendChild(t);
      t.select();
      try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
      t.remove();
    }
    btn.textContent = ok ? "Copied" : "Select and copy";
    setTimeout(() => { btn.textContent = "Copy"; }, 2000);
  }

  $("discover").addEventListener("click", async () => {
    const b = $("discover");
    b.disabled = true;
    b.textContent = "Scanning…";
    try {
      await api("POST", "/api/discover");
      say($("cams-error"), "");
    } catch (e) {
      say($("cams-error"), e.message);
    }
    setTimeout(() => { b.disabled = false; b.textContent = "Scan the network"; }, 5000);
  });

  // ---- add ----

  function setMode() {
    const byURL = document.querySelector('input[name="mode"]:checked').value === "url";
    $("add-url-label").hidden = !byURL;
    $("add-pick-label").hidden = byURL;
  }
  for (const r of document.querySelectorAll('input[name="mode"]')) r.addEventListener("change", setMode);

  $("add-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("add-result");
    const byURL = document.querySelector('input[name="mode"]:checked').value === "url";
    const req = {
      name: $("add-name").value.trim(),
      username: $("add-user").value.trim(),
      password: $("add-pass").value,
      audio: $("add-audio").checked,
    };
    let testURL;
    if (byURL) {
      req.url = $("add-url").value.trim();
      testURL = req.url;
      if (!req.url) return say(out, "Type the camera's RTSP address.");
    } else {
      req.camera_id = $("add-pick").value;
      const c = cameras.find((x) => x.camera_id === req.camera_id);
      if (!c) return say(out, "Pick a discovered camera, or scan the network first.");
      testURL = c.url;
    }
    const btn = $("add-submit");
    btn.disabled = true;
    try {
      if (testURL) {
        say(out, "Testing the stream…", true);
        const info = await api("POST", "/api/test-stream", { url: testURL, username: req.username, password: req.password });
        const v = (info.tracks || []).find((t) => t.kind === "video");
        say(out, "Stream works" + (v ? ": " + v.codec + (v.width ? " " + v.width + "×" + v.height : "") : "") + ". Adding…", true);
      }
      const cam = await api("POST", "/api/cameras", req);
      say(out, "Added “" + (cam.name || cam.camera_id) + "”." + (cam.agent_id ? " Agent ID: " + cam.agent_id : ""), true);
      $("add-pass").value = "";
      $("add-url").value = "";
      $("add-name").value = "";
      refresh();
    } catch (e) {
      say(out, e.status === 422 ? "The camera's stream does not work: " + e.message : e.message);
    } finally {
      btn.disabled = false;
    }
  });

  // ---- connection ----

  async function loadConnection() {
    try {
      const c = await api("GET", "/api/connection");
      $("mq-url").value = c.mqtt.url || "";
      $("mq-user").value = c.mqtt.username || "";
      $("mq-pass").value = "";
      $("mq-pass").placeholder = c.mqtt.password_set ? "unchanged" : "";
      $("mq-prefix").value = c.mqtt.topic_prefix || "";
      const f = c.flussonic;
      $("fl-url").value = f.publish || "";
      $("fl-user").value = f.username || "";
      $("fl-pass").value = "";
      $("fl-pass").placeholder = f.password_set ? "unchanged" : "";
      $("fl-stream").value = f.stream_name || "";
      $("fl-events").value = (f.events || []).map((e) => e.url + (e.format === "episodes" ? " episodes" : "")).join("\n");
    } catch (e) {
      say($("conn-result"), e.message);
    }
  }

  $("conn-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const events = $("fl-events").value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
      const [url, format] = l.split(/\s+/);
      return { url, format: format === "episodes" ? "episodes" : "event_sink" };
    });
    const body = {
      mqtt: { url: $("mq-url").value.trim(), username: $("mq-user").value.trim(), password: $("mq-pass").value, topic_prefix: $("mq-prefix").value.trim() },
      flussonic: { publish: $("fl-url").value.trim(), username: $("fl-user").value.trim(), password: $("fl-pass").value, stream_name: $("fl-stream").value.trim(), events },
    };
    try {
      await api("PUT", "/api/connection", body);
      say($("conn-result"), "Saved.", true);
      loadConnection();
    } catch (e) {
      say($("conn-result"), e.message);
    }
  });

  // ---- Wi-Fi QR ----

  let qrURL = "";
  $("wifi-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({ ssid: $("wf-ssid").value, password: $("wf-pass").value, type: $("wf-type").value });
    if ($("wf-hidden").checked) p.set("hidden", "true");
    say($("wifi-error"), "");
    try {
      const res = await api("GET", "/api/wifi-qr.png?" + p.toString());
      const blob = await res.blob();
      if (qrURL) URL.revokeObjectURL(qrURL);
      qrURL = URL.createObjectURL(blob);
      $("wifi-img").src = qrURL;
      $("wifi-img").hidden = false;
    } catch (e) {
      $("wifi-img").hidden = true;
      say($("wifi-error"), e.message);
    }
  });

  // ---- polling ----

  async function refresh() {
    try {
      const [st, cams] = await Promise.all([api("GET", "/api/status"), api("GET", "/api/cameras")]);
      renderStatus(st);
      renderCameras(cams.cameras || []);
      say($("st-error"), "");
    } catch (e) {
      if (e.status !== 401) say($("st-error"), e.message);
    }
  }

  function startPolling() {
    stopPolling();
    lastThumb = 0;
    refresh();
    pollTimer = setInterval(refresh, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = 0;
  }

  async function start() {
    setMode();
    try {
      const s = await api("GET", "/api/session");
      if (s.logged_in) {
        csrf = s.csrf_token;
        showApp();
        return;
      }
    } catch (e) { /* fall through to the login form */ }
    showLogin();
  }

  start();
})();
