/* persona-stream browser tracker (served by the API at GET /tracker.js).
 *
 *   <script src="https://API/tracker.js" data-write-key="KEY"></script>
 *
 * Options (data-* attributes of the script tag, or personaStream.init({...})):
 *   data-write-key       write key, sent as ?writeKey= (sendBeacon cannot set headers)
 *   data-api-url         API base URL (default: the origin this script was loaded from)
 *   data-auto-page-view  "false" = do not track the page view of this page automatically
 *   data-respect-gpc     "false" = ignore Global Privacy Control (default: honour it)
 *
 * Consent: with Global Privacy Control on (navigator.globalPrivacyControl === true) and
 * respectGpc (the default), the tracker sends nothing and sets no cookie. A visitor id it
 * had stored before is sent in ONE consent event {status: "opt_out", source: "gpc"}, so the
 * engine forgets it, and removed. personaStream.optOut() does the same on request (source
 * "banner" unless given) and the tracker stays silent on this site, whatever GPC says, until
 * personaStream.optIn(), which sends {status: "opt_in"} under a new visitor id. That choice
 * is kept in the "ps_optout" cookie and localStorage.
 *
 * Visitor id: first-party, cookie "ps_vid" on the website's domain (1 year, SameSite=Lax)
 * mirrored in localStorage; whichever survives restores the other.
 *
 * Page views: ONE page_view event per page view, sent ONCE with sendBeacon when the page
 * is first hidden (visibilitychange to hidden or pagehide: tab switch, navigation, close),
 * carrying dwell_ms = the time the page was visible (Page Visibility API). Its event_id is
 * fixed when the view starts, so even a duplicate delivery is processed once. A page restored
 * from the back/forward cache, or personaStream.page() in a single-page app, starts a new view.
 *
 * API (window.personaStream): init(options), visitorId(), page(), touchpoint(fields),
 * feedback(kind, score, extra), identify(userId, traits), assignment(), optOut(source),
 * optIn(source), optedOut().
 * Sending functions return a Promise of true (accepted) / false; they never reject.
 * assignment() resolves to the lookup JSON (INTERFACES 2.1) or null (unknown visitor, error).
 */
(function (window, document) {
  "use strict";
  if (window.personaStream && window.personaStream.version) return;

  var VID = "ps_vid";
  var UID = "ps_uid";
  var OPTOUT = "ps_optout";
  var MAX_DWELL_MS = 86400000;
  var script = document.currentScript;
  var cfg = { apiUrl: "", writeKey: "", autoPageView: true, respectGpc: true };
  var view = null;
  var cachedVid = null;

  function attr(name) {
    return script ? script.getAttribute(name) : null;
  }
  if (script && script.src) {
    try { cfg.apiUrl = new URL(script.src, document.baseURI).origin; } catch (e) { /* keep */ }
  }
  cfg.apiUrl = attr("data-api-url") || cfg.apiUrl;
  cfg.writeKey = attr("data-write-key") || "";
  cfg.autoPageView = attr("data-auto-page-view") !== "false";
  cfg.respectGpc = attr("data-respect-gpc") !== "false";

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try { return c.randomUUID(); } catch (e) { /* not a secure context */ }
    }
    var b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") c.getRandomValues(b);
    else for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = "";
    for (var j = 0; j < 16; j++) h += (b[j] + 0x100).toString(16).slice(1);
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" +
      h.slice(16, 20) + "-" + h.slice(20);
  }

  function pad(n, w) {
    var s = String(Math.abs(n));
    while (s.length < (w || 2)) s = "0" + s;
    return s;
  }

  // RFC 3339 in the visitor's own offset (the engine reads hour and weekday from it).
  function rfc3339(d) {
    var off = -d.getTimezoneOffset();
    var zone = off === 0 ? "Z" : (off > 0 ? "+" : "-") + pad(Math.floor(Math.abs(off) / 60)) +
      ":" + pad(Math.abs(off) % 60);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." +
      pad(d.getMilliseconds(), 3) + zone;
  }

  function now() {
    return window.performance && performance.now ? performance.now() : Date.now();
  }

  function store(key, value) {
    try {
      if (value === undefined) return window.localStorage.getItem(key);
      window.localStorage.setItem(key, value);
    } catch (e) { /* storage disabled */ }
    return null;
  }

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function writeCookie(name, value, maxAge) {
    var secure = window.location.protocol === "https:" ? "; Secure" : "";
    try {
      document.cookie = name + "=" + encodeURIComponent(value) + "; Max-Age=" + maxAge +
        "; Path=/; SameSite=Lax" + secure;
    } catch (e) { /* cookies disabled */ }
  }

  function unstore(key) {
    try { window.localStorage.removeItem(key); } catch (e) { /* storage disabled */ }
  }

  function storedVisitorId() {
    return cachedVid || readCookie(VID) || store(VID);
  }

  function visitorId() {
    if (cachedVid) return cachedVid;
    var id = readCookie(VID) || store(VID) || uuid();
    if (id.length > 128) id = uuid();
    if (!silenced()) {  // an opted-out visitor gets no cookie
      writeCookie(VID, id, 31536000);
      store(VID, id);
    }
    cachedVid = id;
    return id;
  }

  // --- consent ----------------------------------------------------------------------------
  function gpc() {
    return cfg.respectGpc && navigator.globalPrivacyControl === true;
  }

  function optedOut() {
    return readCookie(OPTOUT) === "1" || store(OPTOUT) === "1";
  }

  function silenced() {
    return gpc() || optedOut();
  }

  function forgetLocally() {
    writeCookie(VID, "", 0);
    unstore(VID);
    unstore(UID);
    cachedVid = null;
    view = null;
  }

  // The one event an opted-out visitor sends: the opt-out itself, with the id to forget.
  function sendOptOut(source, remember) {
    var known = storedVisitorId();
    if (remember) {
      writeCookie(OPTOUT, "1", 31536000);
      store(OPTOUT, "1");
    }
    var sent = Promise.resolve(false);
    if (known) {
      var ev = baseEvent("consent");
      ev.visitor_id = known;
      ev.status = "opt_out";
      ev.source = source;
      sent = post(ev, false);
    }
    forgetLocally();
    return sent;
  }

  function endpoint(path) {
    var base = cfg.apiUrl.replace(/\/+$/, "");
    return base + path + (cfg.writeKey ? "?writeKey=" + encodeURIComponent(cfg.writeKey) : "");
  }

  function baseEvent(type) {
    var ev = {
      event_id: uuid(),
      type: type,
      visitor_id: visitorId(),
      ts: rfc3339(new Date()),
      context: {
        user_agent: String(navigator.userAgent || "").slice(0, 1024),
        locale: String(navigator.language || "").slice(0, 35)
      }
    };
    if (!ev.context.locale) delete ev.context.locale;
    var uid = store(UID);
    if (uid) ev.user_id = uid;
    return ev;
  }

  function send(ev, beacon) {
    if (silenced()) return Promise.resolve(false);
    return post(ev, beacon);
  }

  // text/plain keeps the request "simple": no CORS preflight; the collector reads it as JSON.
  function post(ev, beacon) {
    var url = endpoint("/v1/events");
    var body = JSON.stringify(ev);
    if (beacon && navigator.sendBeacon) {
      try {
        if (navigator.sendBeacon(url, body)) return Promise.resolve(true);
      } catch (e) { /* fall through to fetch */ }
    }
    if (!window.fetch) return Promise.resolve(false);
    return fetch(url, {
      method: "POST",
      body: body,
      keepalive: true,
      credentials: "omit",
      headers: { "Content-Type": "text/plain;charset=UTF-8" }
    }).then(function (r) { return r.ok; }, function () { return false; });
  }

  // --- page views and dwell -------------------------------------------------------------
  function startView(referrer) {
    view = {
      id: uuid(),
      ts: rfc3339(new Date()),
      url: String(window.location.href).slice(0, 8192),
      referrer: String(referrer || "").slice(0, 8192),
      title: document.title,
      visibleMs: 0,
      since: document.visibilityState === "hidden" ? null : now(),
      sent: false
    };
  }

  function pauseClock() {
    if (view && view.since !== null) {
      view.visibleMs += now() - view.since;
      view.since = null;
    }
  }

  function flushView() {
    if (!view || view.sent) return Promise.resolve(false);
    pauseClock();
    view.sent = true;
    var ev = baseEvent("page_view");
    ev.event_id = view.id;
    ev.ts = view.ts;
    ev.url = view.url;
    ev.referrer = /^https?:\/\//i.test(view.referrer) ? view.referrer : "";
    ev.title = String(view.title || document.title || "").slice(0, 2048);
    ev.dwell_ms = Math.max(0, Math.min(MAX_DWELL_MS, Math.round(view.visibleMs)));
    return send(ev, true);
  }

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") flushView();
    else if (view && !view.sent && view.since === null) view.since = now();
  });
  window.addEventListener("pagehide", function () { flushView(); });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted && cfg.autoPageView) startView(document.referrer);
  });

  // --- public API -----------------------------------------------------------------------
  var api = {
    version: "1",
    init: function (options) {
      options = options || {};
      if (options.apiUrl) cfg.apiUrl = String(options.apiUrl);
      if (options.writeKey !== undefined) cfg.writeKey = String(options.writeKey || "");
      if (options.respectGpc !== undefined) cfg.respectGpc = options.respectGpc !== false;
      if (options.autoPageView === false) {
        cfg.autoPageView = false;
        if (view && !view.sent) view = null;
      }
      return api;
    },
    visitorId: visitorId,
    // Ends the current page view (sends it with its dwell) and starts a new one: for
    // single-page apps after a route change, or to start tracking with autoPageView off.
    page: function () {
      var previous = view ? view.url : document.referrer;
      var sent = flushView();
      startView(previous);
      return sent;
    },
    touchpoint: function (fields) {
      var ev = baseEvent("touchpoint");
      fields = fields || {};
      ev.channel = fields.channel || "other";
      ev.action = fields.action || "other";
      ["name", "campaign", "value"].forEach(function (k) {
        if (fields[k] !== undefined && fields[k] !== null) ev[k] = fields[k];
      });
      return send(ev, false);
    },
    feedback: function (kind, score, extra) {
      var ev = baseEvent("feedback");
      ev.kind = kind;
      ev.score = score;
      extra = extra || {};
      if (extra.touchpoint) ev.touchpoint = extra.touchpoint;
      if (extra.comment) ev.comment = String(extra.comment).slice(0, 2000);
      return send(ev, false);
    },
    identify: function (userId, traits) {
      store(UID, String(userId));
      var ev = baseEvent("identify");
      ev.user_id = String(userId);
      ev.traits = traits || {};
      return send(ev, false);
    },
    assignment: function () {
      if (!window.fetch || silenced()) return Promise.resolve(null);
      var url = endpoint("/v1/visitors/" + encodeURIComponent(visitorId()));
      return fetch(url, { credentials: "omit", cache: "no-store" }).then(function (r) {
        return r.ok ? r.json() : null;
      }).catch(function () { return null; });
    },
    // Consent (see the header): opt out = one consent event, then silence on this site.
    optOut: function (source) {
      return sendOptOut(String(source || "banner"), true);
    },
    optIn: function (source) {
      writeCookie(OPTOUT, "", 0);
      unstore(OPTOUT);
      if (gpc()) return Promise.resolve(false);  // the browser's signal still says no
      var ev = baseEvent("consent");
      ev.status = "opt_in";
      ev.source = String(source || "banner");
      return post(ev, false);
    },
    optedOut: function () { return silenced(); }
  };

  window.personaStream = api;
  // Under GPC, a visitor id stored before is sent once in an opt-out (then removed), so the
  // engine forgets it; nothing else is sent while the signal is on.
  if (gpc() && !optedOut()) sendOptOut("gpc", false);
  if (cfg.autoPageView && !silenced()) startView(document.referrer);
})(window, document);
