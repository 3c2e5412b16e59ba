/*
 * Web personalization for the tenant's pages: window.crmPersonalize(visitorId, crmOrigin) asks
 * the CRM which content goes into each element marked data-crm-slot="<slot>" and puts it there.
 * An element keeps its own content when the CRM has nothing for its slot or cannot be reached,
 * so that content is the fallback. When done (filled or not), <html> gets
 * data-crm-personalized="done" and a "crm:personalized" event is dispatched on document.
 * The tracking snippet (crm.js) loads this file and calls crmPersonalize; a page may too.
 */
(function () {
  "use strict";

  var SLOT = /^[-a-zA-Z0-9_]{1,50}$/;
  var MAX_SLOTS = 20;

  function finish(filled) {
    document.documentElement.setAttribute("data-crm-personalized", "done");
    var event;
    try {
      event = new CustomEvent("crm:personalized", { detail: { slots: filled } });
    } catch (error) {
      return filled;
    }
    document.dispatchEvent(event);
    return filled;
  }

  window.crmPersonalize = function (visitorId, crmOrigin) {
    var elements = document.querySelectorAll("[data-crm-slot]");
    var slots = [];
    for (var i = 0; i < elements.length; i++) {
      var slot = elements[i].getAttribute("data-crm-slot");
      if (SLOT.test(slot) && slots.indexOf(slot) === -1 && slots.length < MAX_SLOTS) {
        slots.push(slot);
      }
    }
    if (!slots.length || !window.fetch) {
      return Promise.resolve(finish([]));
    }
    var url = String(crmOrigin || "").replace(/\/+$/, "") + "/t/personalize?slots=" +
      encodeURIComponent(slots.join(","));
    if (visitorId) {
      url += "&vid=" + encodeURIComponent(visitorId);
    }
    return fetch(url, { credentials: "omit", mode: "cors" })
      .then(function (response) {
        return response.ok ? response.json() : {};
      })
      .then(function (content) {
        var filled = [];
        for (var j = 0; j < elements.length; j++) {
          var name = elements[j].getAttribute("data-crm-slot");
          if (Object.prototype.hasOwnProperty.call(content, name) &&
              typeof content[name] === "string") {
            elements[j].innerHTML = content[name];
            elements[j].setAttribute("data-crm-filled", "");
            if (filled.indexOf(name) === -1) {
              filled.push(name);
            }
          }
        }
        return finish(filled);
      })
      .catch(function () {
        return finish([]);
      });
  };
})();
