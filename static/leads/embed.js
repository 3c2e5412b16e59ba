/*
 * The lead-form embed script. The snippet a tenant pastes is a plain HTML form that posts to
 * the form's hosted page; this script, served by the CRM, upgrades every
 * <form data-crm-form="<endpoint>"> on the page: it draws the fields as the form is set up now
 * (GET <endpoint>), posts them as JSON with fetch (the endpoint answers with CORS headers),
 * and shows the thank-you message or the field errors in place, or follows the form's
 * redirect. When the endpoint cannot be reached the plain form is left to post as it is.
 */
(function () {
  "use strict";

  function make(tag, attributes, text) {
    var element = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      element.setAttribute(name, attributes[name]);
    });
    if (text) {
      element.textContent = text;
    }
    return element;
  }

  function fieldNode(field, prefix) {
    var id = prefix + field.name;
    var wrapper = make("p", { "class": "crm-form-field", "data-field": field.name });
    if (field.type === "checkboxes") {
      var group = make("fieldset");
      group.appendChild(make("legend", {}, field.label));
      field.choices.forEach(function (choice, index) {
        var label = make("label", { "for": id + "-" + index });
        label.appendChild(
          make("input", { type: "checkbox", name: field.name, value: choice, id: id + "-" + index })
        );
        label.appendChild(document.createTextNode(" " + choice + " "));
        group.appendChild(label);
      });
      wrapper.appendChild(group);
      return wrapper;
    }
    wrapper.appendChild(make("label", { "for": id }, field.label + (field.required ? " *" : "")));
    wrapper.appendChild(make("br"));
    var input;
    if (field.type === "select") {
      input = make("select", { name: field.name, id: id });
      input.appendChild(make("option", { value: "" }, "—"));
      field.choices.forEach(function (choice) {
        input.appendChild(make("option", { value: choice }, choice));
      });
    } else {
      input = make("input", { type: field.type, name: field.name, id: id });
      if (field.max_length) {
        input.setAttribute("maxlength", field.max_length);
      }
      if (field.autocomplete) {
        input.setAttribute("autocomplete", field.autocomplete);
      }
    }
    if (field.required) {
      input.setAttribute("required", "");
    }
    wrapper.appendChild(input);
    return wrapper;
  }

  function draw(form, definition, prefix) {
    var button = make("button", { type: "submit" }, definition.submit_label);
    var status = make("div", { "class": "crm-form-status", role: "alert" });
    var trap = make("div", {
      "aria-hidden": "true",
      style: "position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden"
    });
    trap.appendChild(
      make("input", { type: "text", name: definition.honeypot, tabindex: "-1", autocomplete: "off" })
    );
    form.replaceChildren(status);
    definition.fields.forEach(function (field) {
      form.appendChild(fieldNode(field, prefix));
    });
    form.appendChild(trap);
    form.appendChild(button);
  }

  function values(form, definition) {
    var data = {};
    definition.fields.forEach(function (field) {
      if (field.type === "checkboxes") {
        data[field.name] = Array.prototype.map.call(
          form.querySelectorAll('input[name="' + field.name + '"]:checked'),
          function (box) { return box.value; }
        );
      } else {
        data[field.name] = form.elements[field.name].value;
      }
    });
    data[definition.honeypot] = form.elements[definition.honeypot].value;
    // The tracking snippet's visitor (crm.js), so that its earlier page views join the contact.
    var visitor = (window.crm && window.crm.visitorId) ||
      (document.cookie.match(/(?:^|; )crm_vid=([^;]*)/) || [])[1];
    if (visitor) {
      data.crm_visitor = visitor;
    }
    return data;
  }

  function showErrors(form, answer) {
    form.querySelectorAll(".crm-form-error").forEach(function (node) { node.remove(); });
    form.querySelector(".crm-form-status").textContent = answer.error || "Something went wrong.";
    Object.keys(answer.errors || {}).forEach(function (name) {
      var field = form.querySelector('[data-field="' + name + '"]');
      if (field) {
        field.appendChild(make("span", { "class": "crm-form-error" }, " " + answer.errors[name].join(" ")));
      }
    });
  }

  function finish(form, answer) {
    if (answer.redirect && /^https?:\/\//i.test(answer.redirect)) {
      window.location.assign(answer.redirect);
      return;
    }
    form.replaceChildren(make("p", { "class": "crm-form-message", role: "status" }, answer.message));
  }

  function upgrade(form, number) {
    var endpoint = form.getAttribute("data-crm-form");
    if (form.hasAttribute("data-crm-ready")) {
      return;
    }
    form.setAttribute("data-crm-ready", "");
    fetch(endpoint, { headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("form unavailable");
        }
        return response.json();
      })
      .then(function (definition) {
        draw(form, definition, "crm-form-" + number + "-");
        form.addEventListener("submit", function (event) {
          event.preventDefault();
          var button = form.querySelector("button[type=submit]");
          button.disabled = true;
          fetch(endpoint, {
            method: "POST",
            headers: { "Content-Type": "application/json", Accept: "application/json" },
            body: JSON.stringify(values(form, definition))
          })
            .then(function (response) {
              return response.json().then(function (answer) {
                if (response.ok) {
                  finish(form, answer);
                } else {
                  showErrors(form, answer);
                  button.disabled = false;
                }
              });
            })
            .catch(function () {
              showErrors(form, { error: "The form could not be sent. Please try again." });
              button.disabled = false;
            });
        });
      })
      .catch(function () {
        // Leave the plain form: it posts to the hosted page.
      });
  }

  function start() {
    document.querySelectorAll("form[data-crm-form]").forEach(upgrade);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
