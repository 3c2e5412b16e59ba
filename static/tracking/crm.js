/*
 * The CRM's tracking snippet, for a tenant's own website. Install it on every page:
 *
 *   <script>window.crm=window.crm||function(){(crm.q=crm.q||[]).push(arguments)};</script>
 *   <script async src="https://<your CRM host>/static/tracking/crm.js"></script>
 *
 * It sends a page view on load, a product view for each element with data-crm-product-sku
 * (data-crm-product-category, -name and -price go with it), and whatever the page asks:
 *   crm('page')                                    another page view (single-page apps)
 *   crm('product', {sku, category, name, price})
 *   crm('purchase', {order_id, amount, currency, items: [{sku, name, quantity, price}]})
 *   crm('event', name, {key: value, ...})          a custom event
 *   crm('identify', {email, signature})            signature = HMAC-SHA256(identify secret,
 *                                                  email), made by your server, never the page
 * The visitor is known by an anonymous id in a first-party cookie (crm_vid); a visit ends after
 * 30 minutes without events (crm_sid). Events are batched and posted with sendBeacon (or fetch
 * with keepalive) to the CRM this file was loaded from. A campaign e-mail's link arrives with
 * crm_vt=<token>: it is sent as an identify and taken out of the address bar. Elements with
 * data-crm-slot are filled by the CRM's web personalization (personalize.js).
 */
(function () {
  "use strict";
  if (window.crm && window.crm.loaded) {
    return;
  }
  var script = document.currentScript || document.querySelector('script[src*="/static/tracking/crm.js"]');
  if (!script || !window.JSON || !window.crypto) {
    return;
  }
  var ORIGIN = new URL(script.src, location.href).origin;
  var ENDPOINT = ORIGIN + "/t/collect";
  var BATCH = 20;
  var DELAY = 1000;
  var IDLE = 30 * 60;
  var queue = [];
  var timer = null;

  function uuid() {
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function cookie(name) {
    var found = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return found ? found[1] : "";
  }

  function setCookie(name, value, seconds) {
    document.cookie = name + "=" + value + "; Max-Age=" + seconds + "; Path=/; SameSite=Lax" +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  var visitor = cookie("crm_vid");
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(visitor)) {
    visitor = uuid();
  }
  setCookie("crm_vid", visitor, 2 * 365 * 24 * 3600);

  // The visit: the same key while events keep coming within 30 minutes of each other.
  function session() {
    var key = cookie("crm_sid");
    if (!/^[0-9a-f]{32}$/.test(key)) {
      key = uuid().replace(/-/g, "");
    }
    setCookie("crm_sid", key, IDLE);
    return key;
  }

  function text(value, max) {
    return value === undefined || value === null ? "" : String(value).slice(0, max);
  }

  function number(value) {
    var n = Number(value);
    return value === undefined || value === null || value === "" || !isFinite(n) || n < 0 ? undefined : n;
  }

  function send(body) {
    body.v = visitor;
    body.s = session();
    body.sent_at = Date.now();
    var data = JSON.stringify(body);
    // A string goes as text/plain: a "simple" request, no preflight.
    if (navigator.sendBeacon && navigator.sendBeacon(ENDPOINT, data)) {
      return;
    }
    if (window.fetch) {
      fetch(ENDPOINT, { method: "POST", body: data, keepalive: true, credentials: "omit",
        headers: { "Content-Type": "text/plain" } }).catch(function () {});
    }
  }

  function flush() {
    clearTimeout(timer);
    timer = null;
    while (queue.length) {
      send({ events: queue.splice(0, BATCH) });
    }
  }

  function push(event) {
    var params = new URLSearchParams(location.search);
    var utm = {};
    ["source", "medium", "campaign", "term", "content"].forEach(function (name) {
      if (params.get("utm_" + name)) {
        utm[name] = text(params.get("utm_" + name), 100);
      }
    });
    event.id = uuid();
    event.ts = Date.now();
    event.url = text(location.href, 2000);
    event.title = text(document.title, 300);
    event.referrer = text(document.referrer, 2000);
    event.utm = utm;
    queue.push(event);
    if (queue.length >= BATCH) {
      flush();
    } else if (!timer) {
      timer = setTimeout(flush, DELAY);
    }
  }

  var commands = {
    page: function () {
      push({ kind: "page_view" });
    },
    product: function (p) {
      p = p || {};
      push({ kind: "product_view", sku: text(p.sku, 100), category: text(p.category, 100),
        name: text(p.name, 200), price: number(p.price) });
    },
    purchase: function (p) {
      p = p || {};
      if (!p.order_id || number(p.amount) === undefined || !/^[A-Za-z]{3}$/.test(p.currency || "")) {
        console.warn("crm('purchase') needs order_id, amount and a 3-letter currency");
        return;
      }
      push({ kind: "purchase", order_id: text(p.order_id, 100), amount: number(p.amount),
        currency: p.currency.toUpperCase(),
        items: (p.items || []).slice(0, 100).map(function (item) {
          return { sku: text(item.sku, 100), name: text(item.name, 200),
            quantity: Math.max(0, Math.round(Number(item.quantity) || 1)), price: number(item.price) };
        }) });
    },
    event: function (name, props) {
      var clean = {};
      Object.keys(props || {}).slice(0, 30).forEach(function (key) {
        var value = props[key];
        clean[text(key, 100)] = typeof value === "number" || typeof value === "boolean" || value === null
          ? value : text(value, 500);
      });
      if (name) {
        push({ kind: "custom", name: text(name, 100), props: clean });
      }
    },
    identify: function (who) {
      who = who || {};
      flush();
      send({ identify: who.token ? { token: text(who.token, 1000) }
        : { email: text(who.email, 254), signature: text(who.signature, 128) } });
    }
  };

  function crm(command) {
    if (commands[command]) {
      commands[command].apply(null, Array.prototype.slice.call(arguments, 1));
    }
  }

  var waiting = (window.crm && window.crm.q) || [];
  crm.loaded = true;
  crm.visitorId = visitor;
  crm.origin = ORIGIN;
  window.crm = crm;

  // An e-mail click's identity token: sent once, and not left in the address to be shared.
  var here = new URL(location.href);
  var token = here.searchParams.get("crm_vt");
  if (token) {
    here.searchParams.delete("crm_vt");
    history.replaceState(history.state, "", here.pathname + here.search + here.hash);
  }
  commands.page();
  waiting.forEach(function (args) { crm.apply(null, args); });
  if (token) {
    commands.identify({ token: token });
  }

  function onReady() {
    document.querySelectorAll("[data-crm-product-sku]").forEach(function (element) {
      commands.product({
        sku: element.getAttribute("data-crm-product-sku"),
        category: element.getAttribute("data-crm-product-category"),
        name: element.getAttribute("data-crm-product-name"),
        price: element.getAttribute("data-crm-product-price")
      });
    });
    if (document.querySelector("[data-crm-slot]")) {
      var personalize = document.createElement("script");
      personalize.src = ORIGIN + "/static/tracking/personalize.js";
      personalize.async = true;
      personalize.onload = function () {
        if (typeof window.crmPersonalize === "function") {
          window.crmPersonalize(visitor, ORIGIN);
        }
      };
      document.head.appendChild(personalize);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", onReady);
  } else {
    onReady();
  }
  // Leaving the page (or hiding it, on phones) sends what is waiting.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") {
      flush();
    }
  });
  window.addEventListener("pagehide", flush);
})();
