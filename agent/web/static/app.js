// The pairing page. Everything that came from a device or a user (names, models, errors) is
// put on the page with textContent, never as HTML.
//
// Its words come from the catalogue of the page's language (i18n/<lang>.json): the server renders
// index.html in it already, and this script uses the same catalogue for what it writes and when
// the switch changes the language. The API speaks English with stable error codes; errors are
// shown by their code in the page's language, the API's English message being the fallback.
"use strict";

(function () {
  const POLL_MS = 3000;
  const THUMB_MS = 10000;
  const LANGS = ["ru", "en"];
  const LANG_KEY = "camgate.lang"; // localStorage: the language the switch chose
  let csrf = "";
  let pollTimer = 0;
  let lastThumb = 0;
  let cameras = [];
  let lastStatus = null;
  let lang = document.documentElement.lang || "ru";
  let cat = {};
  const cards = new Map(); // camera_id -> {el, cam}

  const $ = (id) => document.getElementById(id);

  // t returns the catalogue's text for key with {name} filled from args; an unknown key shows
  // itself, so a missing string is seen, not hidden.
  function t(key, args) {
    const s = Object.prototype.hasOwnProperty.call(cat, key) ? cat[key] : key;
    return s.replace(/\{(\w+)\}/g, (m, name) => (args && name in args ? String(args[name]) : m));
  }

  // applyTranslations fills every data-i18n element (and data-i18n-<attr> attribute) under root.
  function applyTranslations(root) {
    for (const el of root.querySelectorAll("*")) {
      for (const a of el.getAttributeNames()) {
        if (a === "data-i18n") el.textContent = t(el.getAttribute(a));
        else if (a.startsWith("data-i18n-")) el.setAttribute(a.slice(10), t(el.getAttribute(a)));
      }
    }
  }

  async function loadCatalogue(l) {
    const res = await fetch("i18n/" + l + ".json", { credentials: "same-origin", cache: "no-cache" });
    if (!res.ok) throw new Error("catalogue " + l + ": " + res.status);
    return res.json();
  }

  // setLanguage switches the page to l: every fixed string, then what the script wrote.
  async function setLanguage(l, remember) {
    cat = await loadCatalogue(l);
    lang = l;
    document.documentElement.lang = l;
    applyTranslations(document);
    applyTranslations($("camera-tpl").content);
    if (remember) {
      try { localStorage.setItem(LANG_KEY, l); } catch (e) { /* private mode: this visit only */ }
      // The server reads the cookie to render the next page in this language at once.
      document.cookie = "camgate_lang=" + l + "; path=/; max-age=31536000; SameSite=Strict";
    }
    if (lastStatus) renderStatus(lastStatus);
    for (const card of cards.values()) if (card.cam) updateCard(card, card.cam, false);
    fillPicker();
    // Keep what the owner is typing in the forms; only the placeholders are words of ours.
    for (const id of ["mq-pass", "fl-pass"]) if ($(id).placeholder) $(id).placeholder = t("form.unchanged");
  }

  function storedLanguage() {
    try {
      const l = localStorage.getItem(LANG_KEY);
      return LANGS.includes(l) ? l : "";
    } catch (e) {
      return "";
    }
  }

  $("lang-switch").addEventListener("click", () => {
    setLanguage(lang === "ru" ? "en" : "ru", true).catch(() => {});
  });

  class APIError extends Error {
    constructor(status, message, code, field) {
      super(message);
      this.status = status;
      this.code = code || "";
      this.field = field || "";
    }
  }

  // fieldName is a request field as the page names it: "flussonic.events[2].url" reads as the
  // catalogue's "field.flussonic.events[].url"; a field without a name shows as it is.
  function fieldName(f) {
    const key = "field." + f.replace(/\[\d+\]/g, "[]");
    return Object.prototype.hasOwnProperty.call(cat, key) ? cat[key] : f;
  }

  // explain is an error in the page's language: its code's text, or the API's English message.
  function explain(e) {
    if (!(e instanceof APIError)) return String(e.message || e);
    const key = "err." + e.code;
    if (!e.code || !Object.prototype.hasOwnProperty.call(cat, key)) return e.message;
    return t(key, { field: fieldName(e.field), detail: e.message, seconds: e.retryAfter || "", status: e.status });
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
      throw new APIError(0, t("err.offline"), "offline");
    }
    if (res.status === 401 && path !== "/api/login") {
      showLogin();
      throw new APIError(401, t("err.login_required"), "login_required");
    }
    if (res.status === 204) return null;
    const type = res.headers.get("Content-Type") || "";
    if (!type.startsWith("application/json")) {
      if (!res.ok) throw new APIError(res.status, t("err.status", { status: res.status }));
      return res;
    }
    const data = await res.json();
    if (!res.ok) {
      const e = new APIError(res.status, data.error || t("err.status", { status: res.status }), data.code, data.field);
      e.retryAfter = res.headers.get("Retry-After") || "";
      throw e;
    }
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
      say($("login-error"), explain(e));
    }
  });

  $("logout").addEventListener("click", async () => {
    try { await api("POST", "/api/logout"); } catch (e) { /* logged out either way */ }
    showLogin();
  });

  // ---- status ----

  // Numbers, durations, sizes and rates in the page's language, by Intl (which also knows
  // Russian plurals: "1 день", "2 дня", "5 дней").
  function unit(n, u, digits) {
    return new Intl.NumberFormat(lang, { style: "unit", unit: u, unitDisplay: "short", maximumFractionDigits: digits || 0 }).format(n);
  }

  function fmtNumber(n) {
    return new Intl.NumberFormat(lang).format(n || 0);
  }

  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s || 0));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return unit(d, "day") + " " + unit(h, "hour");
    if (h) return unit(h, "hour") + " " + unit(m, "minute");
    return unit(m, "minute") + " " + unit(s % 60, "second");
  }

  // Sizes in decimal units (kB = 1000 B), as the unit names say.
  function fmtBytes(n) {
    n = n || 0;
    if (n >= 1e6) return unit(n / 1e6, "megabyte", 1);
    if (n >= 1e3) return unit(n / 1e3, "kilobyte", 1);
    return unit(n, "byte");
  }

  function fmtBitrate(bps) {
    if (!bps) return "";
    if (bps >= 1e6) return unit(bps / 1e6, "megabit-per-second", 1);
    return unit(bps / 1e3, "kilobit-per-second");
  }

  const LINK_KEYS = { up: "link.up", connecting: "link.connecting", down: "link.down", unconfigured: "link.unconfigured" };

  function setLink(badge, errEl, link) {
    const state = (link && link.state) || "unconfigured";
    badge.textContent = LINK_KEYS[state] ? t(LINK_KEYS[state]) : state;
    badge.dataset.state = state;
    errEl.textContent = (link && link.last_error) || "";
  }

  function renderStatus(st) {
    lastStatus = st;
    $("st-id").textContent = st.gateway_id;
    $("gw-name").textContent = st.gateway_id;
    $("st-version").textContent = st.version;
    $("st-uptime").textContent = fmtDuration(st.uptime_s);
    setLink($("st-mqtt"), $("st-mqtt-err"), st.mqtt);
    setLink($("st-flu"), $("st-flu-err"), st.flussonic);
    $("st-cams").textContent = t("status.cameras_value", { added: fmtNumber(st.cameras), relaying: fmtNumber(st.relaying) });
    let q = t("status.queue_value", { count: fmtNumber(st.outbox_depth), size: fmtBytes(st.outbox_bytes) });
    if (st.outbox_drops) q += ", " + t("status.queue_drops", { drops: fmtNumber(st.outbox_drops) });
    $("st-queue").textContent = q;
    // The login cameras use for alarm mail: the owner types it into each camera's SMTP settings.
    const smtp = st.smtp;
    $("st-smtp-label").hidden = $("st-smtp").hidden = !smtp;
    if (smtp) {
      $("st-smtp").textContent = smtp.generated
        ? t("status.smtp_generated", { user: smtp.username, password: smtp.password })
        : t("status.smtp_configured", { user: smtp.username });
    }
  }

  // ---- cameras ----

  function camState(c) {
    if (c.state === "discovered") return [t("cam.state_discovered"), "discovered"];
    if (!c.enabled) return [t("cam.state_disabled"), "disabled"];
    if (c.relaying) return [t("cam.state_relaying"), "relaying"];
    if (c.online) return [t("cam.state_online"), "online"];
    return [t("cam.state_offline"), "offline"];
  }

  function newCard(id) {
    const el = $("camera-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.id = id;
    const card = { el, cam: null };
    const q = (sel) => el.querySelector(sel);

    q(".copy-name").addEventListener("click", () => copyText(q(".sc-name").textContent, q(".copy-name")));
    q(".copy-url").addEventListener("click", () => copyText(card.cam.play_url, q(".copy-url")));
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
        b.textContent = t("cam.remove_confirm");
        armed = setTimeout(() => { armed = 0; b.textContent = t("cam.remove"); }, 4000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      b.textContent = t("cam.remove");
      try {
        await api("DELETE", "/api/cameras/" + encodeURIComponent(card.cam.camera_id));
        refresh();
      } catch (e) {
        say(q(".cam-error"), explain(e));
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
      say(card.el.querySelector(".cam-error"), explain(e));
    }
  }

  function updateCard(card, c, thumbs) {
    card.cam = c;
    const q = (sel) => card.el.querySelector(sel);
    q(".cam-name").textContent = c.name || c.ip || c.camera_id;
    const [text, cls] = camState(c);
    q(".cam-state").textContent = text;
    q(".cam-state").dataset.state = cls;
    // On its substream while the uplink was short: the badge's title says so.
    q(".cam-quality").hidden = !(c.relaying && c.quality === "sub");
    q(".cam-model").textContent = [c.vendor, c.model, c.ip].filter(Boolean).join(" · ");
    const media = [];
    if (c.codec) media.push(c.codec);
    if (c.width && c.height) media.push(c.width + "×" + c.height);
    if (c.relaying && c.bitrate_bps) media.push(fmtBitrate(c.bitrate_bps));
    if (c.relaying && c.uplink_bps) media.push(t("cam.uplink", { rate: fmtBitrate(c.uplink_bps) }));
    if (c.needs_credentials) media.push(t("cam.needs_credentials"));
    if (c.moved_to) media.push(t("cam.moved_to", { addr: c.moved_to }));
    q(".cam-media").textContent = media.join(" · ");
    const added = c.state === "added";
    // What SC's "add camera by parameters" form asks for: the name and the play URL at Flussonic.
    q(".sc").hidden = !added || !c.play_url;
    q(".sc-name").textContent = c.name || c.camera_id;
    q(".sc-url").textContent = c.play_url || "";
    q(".cam-error").textContent = c.last_error || "";
    q(".act-add").hidden = added;
    q(".act-toggle").hidden = !added;
    q(".act-toggle").textContent = c.enabled ? t("cam.disable") : t("cam.enable");
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
      o.textContent = t("add.no_discovered");
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
    btn.textContent = ok ? t("cam.copied") : t("cam.copy_failed");
    setTimeout(() => { btn.textContent = t("cam.copy"); }, 2000);
  }

  $("discover").addEventListener("click", async () => {
    const b = $("discover");
    b.disabled = true;
    b.textContent = t("cams.scanning");
    try {
      await api("POST", "/api/discover");
      say($("cams-error"), "");
    } catch (e) {
      say($("cams-error"), explain(e));
    }
    setTimeout(() => { b.disabled = false; b.textContent = t("cams.scan"); }, 5000);
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
      if (!req.url) return say(out, t("add.need_url"));
    } else {
      req.camera_id = $("add-pick").value;
      const c = cameras.find((x) => x.camera_id === req.camera_id);
      if (!c) return say(out, t("add.need_pick"));
      testURL = c.url;
    }
    const btn = $("add-submit");
    btn.disabled = true;
    try {
      if (testURL) {
        say(out, t("add.testing"), true);
        const info = await api("POST", "/api/test-stream", { url: testURL, username: req.username, password: req.password });
        const v = (info.tracks || []).find((tr) => tr.kind === "video");
        say(out, v ? t("add.stream_works", { video: v.codec + (v.width ? " " + v.width + "×" + v.height : "") }) : t("add.stream_works_plain"), true);
      }
      const cam = await api("POST", "/api/cameras", req);
      say(out, t("add.added", { name: cam.name || cam.camera_id }), true);
      $("add-pass").value = "";
      $("add-url").value = "";
      $("add-name").value = "";
      refresh();
    } catch (e) {
      say(out, explain(e));
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
      $("mq-pass").placeholder = c.mqtt.password_set ? t("form.unchanged") : "";
      $("mq-prefix").value = c.mqtt.topic_prefix || "";
      const f = c.flussonic;
      $("fl-url").value = f.publish || "";
      $("fl-pass").value = "";
      $("fl-pass").placeholder = f.password_set ? t("form.unchanged") : "";
      $("fl-stream").value = f.stream_name || "";
      $("fl-events").value = (f.events || []).map((e) => e.url + (e.format === "episodes" ? " episodes" : "")).join("\n");
    } catch (e) {
      say($("conn-result"), explain(e));
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
      flussonic: { publish: $("fl-url").value.trim(), password: $("fl-pass").value, stream_name: $("fl-stream").value.trim(), events },
    };
    try {
      await api("PUT", "/api/connection", body);
      say($("conn-result"), t("form.saved"), true);
      loadConnection();
    } catch (e) {
      say($("conn-result"), explain(e));
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
      say($("wifi-error"), explain(e));
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
      if (e.status !== 401) say($("st-error"), explain(e));
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
    // The server rendered the page in the browser's language (or the cookie's); the switch's
    // choice, kept in localStorage, wins.
    const want = storedLanguage() || (LANGS.includes(lang) ? lang : "ru");
    try {
      if (want !== lang) await setLanguage(want, true);
      else cat = await loadCatalogue(lang);
    } catch (e) { /* the server-rendered words stay; script-made text shows its keys */ }
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
