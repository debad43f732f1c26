/* fusionrec.js: the browser client and recommendation-strip widget of a fusionrec service.
 * No dependencies; served by the service at /sdk/fusionrec.js.
 *
 *   <div id="recs"></div>
 *   <script src="https://reco.shop.example/sdk/fusionrec.js"></script>
 *   <script>
 *     var fr = FusionRec.init({ key: "pk_...", userId: "u42", currency: "EUR" }); // guests: sessionId
 *     fr.strip(document.getElementById("recs"), { placement: "home", k: 6, title: "For you" });
 *     // on the item's page, reached from the strip:
 *     fr.track("view", itemId, FusionRec.exposureFromUrl());
 *     fr.track("add_to_cart", itemId, FusionRec.exposureFromUrl(), { price: 19.9 });
 *   </script>
 *
 * key: the publishable key (scope "events"), which may only post events, and only from the pages
 * in the service's cors_origins; never a write or admin key, which a page cannot keep secret.
 * Reads carry no key, so the service must allow them ([serving] public_read = true when keys are on).
 * Every event names the exposure (the answer) its item was shown in, so CTR and attributed revenue
 * are measured per placement and model version.
 */
(function (global) {
  "use strict";
  var FIELDS = "title,price,image_url,url";
  var EXPOSURE_PARAM = "fr_exposure"; // carries the exposure from a strip to the item's page
  var CLICK_WAIT_MS = 800; // a click's event gets this long to leave before the page navigates
  var script = document.currentScript;
  var DEFAULT_ENDPOINT = script && script.src ? new URL(script.src, global.location.href).origin : global.location.origin;

  function Client(options) {
    options = options || {};
    if (!options.userId && !options.sessionId) throw new Error("fusionrec: give userId or sessionId");
    this.endpoint = String(options.endpoint || DEFAULT_ENDPOINT).replace(/\/+$/, "");
    this.key = options.key || null;
    this.userId = options.userId || null;
    this.sessionId = options.userId ? null : options.sessionId;
    this.currency = options.currency || null;
    this.locale = options.locale || undefined;
  }

  function answer(response) {
    if (!response.ok) {
      return response.text().then(function (text) { throw new Error("HTTP " + response.status + ": " + text); });
    }
    return response.json();
  }

  function newId() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(16) + Math.random().toString(16).slice(2);
  }

  /** GET /v1/recommendations for this visitor; options: placement, k, context (current item), category. */
  Client.prototype.recommendations = function (options) {
    options = options || {};
    var params = new URLSearchParams();
    if (this.userId) params.set("user_id", this.userId); else params.set("session_id", this.sessionId);
    params.set("k", String(options.k || 6));
    params.set("fields", FIELDS);
    ["placement", "context", "category"].forEach(function (name) {
      if (options[name]) params.set(name, options[name]);
    });
    return global.fetch(this.endpoint + "/v1/recommendations?" + params.toString(), { credentials: "omit" }).then(answer);
  };

  /** POST a view, click or add_to_cart of ``itemId`` shown in ``exposureId``; resolves to the
   * service's answer (null when there is no exposure to name: nothing is sent). */
  Client.prototype.track = function (eventType, itemId, exposureId, extra) {
    if (!exposureId) return Promise.resolve(null);
    var body = { event_type: eventType, item_id: String(itemId), event_id: newId() };
    if (this.userId) body.user_id = this.userId; else body.session_id = this.sessionId;
    extra = extra || {};
    if (extra.price !== undefined && extra.price !== null) body.price = Number(extra.price);
    if (extra.quantity !== undefined && extra.quantity !== null) body.quantity = Number(extra.quantity);
    var headers = { "Content-Type": "application/json" };
    if (this.key) headers["X-API-Key"] = this.key;
    return global.fetch(this.endpoint + "/v1/exposures/" + encodeURIComponent(exposureId) + "/events", {
      method: "POST", headers: headers, body: JSON.stringify(body), credentials: "omit"
    }).then(answer);
  };

  /** A price as money in the client's currency (a plain number without one). */
  Client.prototype.money = function (value) {
    if (value === null || value === undefined || !isFinite(value)) return "";
    if (this.currency) {
      try {
        return new Intl.NumberFormat(this.locale, { style: "currency", currency: this.currency }).format(value);
      } catch (e) { /* an unknown currency code: fall through to a plain number */ }
    }
    return Number(value).toFixed(2);
  };

  /** Render a strip of recommendations into ``container``; options: placement, k, context,
   * category, title, itemUrl(item) (the link when the catalogue has no url). Resolves to the answer,
   * or null when it could not be had (the strip then stays empty: a shop page shows no error). */
  Client.prototype.strip = function (container, options) {
    var self = this;
    options = options || {};
    style();
    container.classList.add("fusionrec-strip");
    container.setAttribute("data-state", "loading");
    return this.recommendations(options).then(function (data) {
      draw(self, container, data, options);
      return data;
    }, function (error) {
      container.textContent = "";
      container.setAttribute("data-state", "error");
      if (global.console) global.console.warn("fusionrec: " + error.message);
      return null;
    });
  };

  function node(tag, className, text) {
    var n = document.createElement(tag);
    if (className) n.className = className;
    if (text !== undefined && text !== null) n.textContent = String(text);
    return n;
  }

  function withExposure(href, exposureId) {
    if (!exposureId) return href;
    var url = new URL(href, global.location.href);
    url.searchParams.set(EXPOSURE_PARAM, exposureId);
    return url.toString();
  }

  function draw(client, container, data, options) {
    container.textContent = "";
    var items = data.items || [];
    container.setAttribute("data-exposure-id", data.exposure_id || "");
    if (!items.length) { container.setAttribute("data-state", "empty"); return; }
    if (options.title) container.appendChild(node("h3", "fusionrec-title", options.title));
    var list = node("ul", "fusionrec-items");
    items.forEach(function (item, index) {
      var entry = node("li", "fusionrec-item");
      var link = node("a", "fusionrec-link");
      link.href = withExposure((options.itemUrl ? options.itemUrl(item) : item.url) || "#", data.exposure_id);
      link.setAttribute("data-item-id", item.item_id);
      link.setAttribute("data-position", String(index + 1));
      if (item.image_url) {
        var image = node("img", "fusionrec-image");
        image.src = item.image_url;
        image.alt = item.title || "";
        image.loading = "lazy";
        link.appendChild(image);
      } else {
        link.appendChild(node("div", "fusionrec-image fusionrec-placeholder", (item.title || item.item_id).charAt(0)));
      }
      link.appendChild(node("span", "fusionrec-name", item.title || item.item_id));
      if (item.price !== null && item.price !== undefined) link.appendChild(node("span", "fusionrec-price", client.money(item.price)));
      link.addEventListener("click", function (event) { clicked(client, event, link, item, data.exposure_id); });
      entry.appendChild(link);
      list.appendChild(entry);
    });
    container.appendChild(list);
    container.setAttribute("data-state", "ready");
  }

  function clicked(client, event, link, item, exposureId) {
    var sent = client.track("click", item.item_id, exposureId);
    // A new tab (modifier keys, middle button) keeps this page alive: nothing to wait for.
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    var gone = false;
    var go = function () { if (!gone) { gone = true; global.location.assign(link.href); } };
    global.setTimeout(go, CLICK_WAIT_MS);
    sent.then(go, go);
  }

  function style() {
    if (document.getElementById("fusionrec-style")) return;
    var css = node("style");
    css.id = "fusionrec-style";
    css.textContent =
      ".fusionrec-strip{font:14px/1.35 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330}" +
      ".fusionrec-title{font-size:17px;margin:0 0 10px}" +
      ".fusionrec-items{display:flex;gap:14px;list-style:none;margin:0;padding:0 0 6px;overflow-x:auto}" +
      ".fusionrec-item{flex:0 0 160px}" +
      ".fusionrec-link{display:flex;flex-direction:column;gap:4px;color:inherit;text-decoration:none}" +
      ".fusionrec-link:hover .fusionrec-name{text-decoration:underline}" +
      ".fusionrec-image{width:160px;height:160px;object-fit:cover;border-radius:8px;background:#e9edf3}" +
      ".fusionrec-placeholder{display:flex;align-items:center;justify-content:center;font-size:48px;color:#8792a6}" +
      ".fusionrec-name{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}" +
      ".fusionrec-price{font-weight:600}";
    document.head.appendChild(css);
  }

  global.FusionRec = {
    /** A client for this visitor: options key, userId or sessionId, endpoint, currency, locale. */
    init: function (options) { return new Client(options); },
    /** The exposure id a strip put on the link that led to this page (null when none). */
    exposureFromUrl: function () { return new URLSearchParams(global.location.search).get(EXPOSURE_PARAM); },
    Client: Client
  };
})(window);
