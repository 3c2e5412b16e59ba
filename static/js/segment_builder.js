// The segment rule builder: draws the rules (top-level conditions and one level of groups) as
// rows of selects and inputs named row-<n>-field/operator/value/group and group-<n>-op, which the
// server turns back into the rules JSON. The form's hx-post refreshes the live count and sample on
// every change; adding or removing a row sends "rules-changed" for the same.
(function () {
  "use strict";

  const form = document.getElementById("segment-form");
  if (!form) return;
  const schema = JSON.parse(document.getElementById("segment-schema").textContent);
  const initial = JSON.parse(document.getElementById("segment-rules").textContent) || {};
  const top = document.getElementById("rules");
  let next = 1;

  function element(tag, attrs, children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([key, value]) => {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    });
    (children || []).forEach((child) => node.appendChild(child));
    return node;
  }

  function options(select, pairs, selected) {
    const chosen = new Set([].concat(selected === undefined || selected === null ? [] : selected).map(String));
    pairs.forEach(([value, label]) => {
      const option = element("option", { value: value, text: label });
      option.selected = chosen.has(String(value));
      select.appendChild(option);
    });
  }

  function changed() {
    if (window.htmx) window.htmx.trigger(form, "rules-changed");
  }

  function valueWidget(n, field, kind, value) {
    const name = `row-${n}-value`;
    const spec = schema.fields[field];
    if (kind === "nothing") return element("span");
    if (kind === "one" || kind === "campaign") {
      const select = element("select", { name: name, "aria-label": "Value" });
      options(select, spec.choices, value);
      return select;
    }
    if (kind === "many") {
      const select = element("select", { name: name, multiple: "", "aria-label": "Values" });
      options(select, spec.choices, value);
      return select;
    }
    const input = element("input", { name: name, "aria-label": "Value" });
    if (kind === "days") {
      input.type = "number";
      input.min = "1";
      input.placeholder = "days";
    } else {
      input.type = "text";
      input.maxLength = 100;
      if (kind === "texts") input.placeholder = "one, two, three";
    }
    if (value !== undefined && value !== null) input.value = Array.isArray(value) ? value.join(", ") : value;
    return input;
  }

  function row(condition, group) {
    const n = next++;
    const fieldName = schema.fields[condition.field] ? condition.field : Object.keys(schema.fields)[0];
    const field = element("select", { name: `row-${n}-field`, "aria-label": "Field" });
    options(field, Object.entries(schema.fields).map(([key, spec]) => [key, spec.label]), fieldName);
    const operator = element("select", { name: `row-${n}-operator`, "aria-label": "Operator" });
    const slot = element("span", { class: "rule-value" });
    const remove = element("button", { type: "button", class: "link", text: "Remove" });
    const node = element("div", { class: "rule-row", "data-testid": "rule-row" }, [
      element("input", { type: "hidden", name: `row-${n}-group`, value: group || "" }),
      field,
      operator,
      slot,
      remove,
    ]);

    function drawOperators(selected) {
      operator.replaceChildren();
      const ops = schema.fields[field.value].operators;
      options(operator, ops.map(([op, label]) => [op, label]), selected);
    }
    function drawValue(value) {
      const kind = schema.fields[field.value].operators.find(([op]) => op === operator.value)[2];
      slot.replaceChildren(valueWidget(n, field.value, kind, value));
    }
    drawOperators(condition.operator);
    drawValue(condition.value);
    field.addEventListener("change", () => {
      drawOperators();
      drawValue();
    });
    operator.addEventListener("change", () => drawValue());
    remove.addEventListener("click", () => {
      node.remove();
      changed();
    });
    return node;
  }

  function groupBox(group) {
    const g = next++;
    const op = element("select", { name: `group-${g}-op`, "aria-label": "Group matches" });
    options(op, [["or", "any"], ["and", "all"]], group.op || "or");
    const rows = element("div", { class: "group-rows" });
    const add = element("button", { type: "button", text: "Add condition to group" });
    const remove = element("button", { type: "button", class: "link", text: "Remove group" });
    const legend = element("legend", {}, [document.createTextNode("Matches "), op, document.createTextNode(" of:")]);
    const box = element("fieldset", { class: "rule-group", "data-testid": "rule-group" }, [
      legend,
      rows,
      element("div", { class: "head-actions" }, [add, remove]),
    ]);
    (group.rules || []).forEach((rule) => rows.appendChild(row(rule, String(g))));
    add.addEventListener("click", () => {
      rows.appendChild(row({}, String(g)));
      changed();
    });
    remove.addEventListener("click", () => {
      box.remove();
      changed();
    });
    return box;
  }

  (initial.rules || []).forEach((rule) => {
    top.appendChild(rule && rule.rules ? groupBox(rule) : row(rule || {}, ""));
  });
  document.getElementById("add-condition").addEventListener("click", () => {
    top.appendChild(row({}, ""));
    changed();
  });
  document.getElementById("add-group").addEventListener("click", () => {
    top.appendChild(groupBox({ op: "or", rules: [{}] }));
    changed();
  });
})();
