// fusionrec analytics page: draws the payload built by fusionrec.analytics.report.build_payload.
// Static report: filters re-aggregate the embedded daily cube here. Live dashboard: a filter change
// asks the server (config.dataUrl) for a payload computed with those filters, then draws it.
(function () {
  "use strict";
  var DATA = window.FUSIONREC_DATA;
  var CONFIG = window.FUSIONREC_CONFIG || {};
  var ALL = "(all)";
  var MEASURES = ["sessions", "bounced", "events", "page_views", "view_sessions", "cart_sessions",
    "purchase_sessions", "revenue"];
  // Ratios as in fusionrec.analytics.kpis.RATIOS.
  var RATIOS = {
    conversion_rate: ["purchase_sessions", "sessions"], bounce_rate: ["bounced", "sessions"],
    events_per_session: ["events", "sessions"], pages_per_session: ["page_views", "sessions"],
    aov: ["revenue", "purchase_sessions"], cart_rate: ["cart_sessions", "view_sessions"],
    checkout_rate: ["purchase_sessions", "cart_sessions"]
  };
  var SERIES_KPIS = ["sessions", "revenue", "conversion_rate", "aov", "bounce_rate", "events_per_session",
    "pages_per_session", "cart_rate", "checkout_rate", "purchase_sessions"];
  var LAYOUT = {
    // The legend sits above the plot: below it, it collides with long tick labels and axis titles.
    margin: { l: 60, r: 20, t: 30, b: 50 }, font: { size: 12 }, legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    xaxis: { automargin: true }, yaxis: { automargin: true }
  };
  // No mode bar: it covered legends and labels; dragging still zooms, a double click resets.
  var PLOT_CONFIG = { displaylogo: false, displayModeBar: false, responsive: true };
  var el = function (id) { return document.getElementById(id); };
  // An axis with a title (plotly.js 3+ ignores a plain string title) whose labels get the margin
  // they need, so no label is cut.
  function axis(title, extra) { return Object.assign({ title: { text: title }, automargin: true }, extra || {}); }
  // A right-hand axis over another: its own ticks (not synced to the left axis's grid, which
  // stacks labels on a log axis), no grid of its own.
  function rightAxis(title, extra) {
    return axis(title, Object.assign({ overlaying: "y", side: "right", tickmode: "auto", nticks: 6, showgrid: false, rangemode: "tozero" }, extra || {}));
  }
  // A log axis labelled at 1, 2 and 5 of each decade (every minor tick labelled crowds them).
  function logAxis(title) { return axis(title, { type: "log", dtick: "D2" }); }

  function state() {
    return {
      start: el("f-start").value || null, end: el("f-end").value || null,
      category: el("f-category").value || null, dim: el("f-dim").value, kpi: el("f-kpi").value,
      grain: el("f-grain").value, seg: el("f-seg").value
    };
  }
  function ratio(a, b) { return b > 0 ? a / b : null; }
  function inRange(day, s) { return (!s.start || day >= s.start) && (!s.end || day <= s.end); }
  function weekOf(day) {
    var d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() - ((d.getUTCDay() + 6) % 7));
    return d.toISOString().slice(0, 10);
  }
  function fmt(v, kind) {
    if (v === null || v === undefined || (typeof v === "number" && !isFinite(v))) return "–";
    if (kind === "pct") return (100 * v).toFixed(2) + "%";
    if (kind === "money") return money(v);
    if (kind === "int") return Math.round(v).toLocaleString();
    if (typeof v === "number") return v.toLocaleString(undefined, { maximumFractionDigits: 3 });
    return String(v);
  }
  // Money in the shop's currency (the payload's, from [serving] currency); a plain number without one.
  function money(v) {
    if (DATA && DATA.currency) {
      try { return v.toLocaleString(undefined, { style: "currency", currency: DATA.currency, maximumFractionDigits: 2 }); } catch (e) { /* unknown code */ }
    }
    return v.toLocaleString(undefined, { maximumFractionDigits: 2 });
  }
  function moneyAxis(title, extra) {
    return DATA && DATA.currency ? axis(title + " (" + DATA.currency + ")", extra) : axis(title, extra);
  }
  function empty(id, message) {
    var node = el(id);
    if (node.data) Plotly.purge(node);
    node.className = "plot empty";
    node.textContent = message;
  }
  function draw(id, traces, layout) {
    var node = el(id);
    if (node.className.indexOf("empty") >= 0) { node.textContent = ""; node.className = "plot"; }
    Plotly.react(node, traces, Object.assign({}, LAYOUT, layout || {}), PLOT_CONFIG);
  }
  function table(id, rows, columns) {
    var html = "<table><tr>" + columns.map(function (c) { return "<th>" + c[1] + "</th>"; }).join("") + "</tr>";
    rows.forEach(function (r) {
      html += "<tr>" + columns.map(function (c) {
        var v = c[2] ? c[2](r[c[0]], r) : fmt(r[c[0]]);
        return "<td" + (typeof r[c[0]] === "string" ? ' class="text"' : "") + ">" + v + "</td>";
      }).join("") + "</tr>";
    });
    el(id).innerHTML = html + "</table>";
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]; }); }

  // --- the cube -------------------------------------------------------------------------------------
  function cubeRows(s) {
    var c = DATA.cube, cat = s.category || ALL, rows = [];
    for (var i = 0; i < c.period.length; i++) {
      if (c.category[i] === cat && inRange(c.period[i], s)) rows.push(i);
    }
    return rows;
  }
  function sum(rows, key) {
    var out = {};
    MEASURES.forEach(function (m) { out[m] = 0; });
    var groups = {};
    rows.forEach(function (i) {
      var k = key ? key(i) : "all";
      var g = groups[k] || (groups[k] = MEASURES.reduce(function (o, m) { o[m] = 0; return o; }, {}));
      MEASURES.forEach(function (m) { g[m] += DATA.cube[m][i] || 0; });
    });
    return key ? groups : (groups.all || out);
  }
  function withRatios(g) {
    Object.keys(RATIOS).forEach(function (r) { g[r] = ratio(g[RATIOS[r][0]], g[RATIOS[r][1]]); });
    return g;
  }

  // --- views --------------------------------------------------------------------------------------------
  function tiles(s, total) {
    var users = (DATA.users || []).filter(function (u) { return u.category === (s.category || ALL); })[0] || {};
    var exp = exposureTotals(s), cost = costTotals(s);
    var items = [
      ["Sessions", total.sessions, "int"], ["Revenue", total.revenue, "money"],
      ["Orders", total.purchase_sessions, "int"], ["Conversion rate", total.conversion_rate, "pct"],
      ["Bounce rate", total.bounce_rate, "pct"], ["Events / session", total.events_per_session],
      ["Views / session", total.pages_per_session], ["Average order value", total.aov, "money"],
      ["Users", users.users, "int"], ["Buyer share", ratio(users.buyers, users.users), "pct"],
      ["Repeat-purchase rate", ratio(users.repeat_buyers, users.buyers), "pct"],
      ["Recommendation CTR", exp ? ratio(exp.clicked_exposures, exp.exposures) : null, "pct"],
      ["Attributed revenue", exp ? exp.attributed_revenue : null, "money"],
      ["Cost per acquisition", cost ? ratio(cost.cost, cost.acquisitions) : null, "money"]
    ];
    el("tiles").innerHTML = items.map(function (t) {
      return '<div class="tile"><div class="v">' + fmt(t[1], t[2]) + '</div><div class="k">' + t[0] + "</div></div>";
    }).join("");
    var f = DATA.filters;
    el("tiles-note").textContent = "User counts cover " + (f.start || DATA.bounds.first_day) + " to " +
      (f.end || DATA.bounds.last_day) + " (distinct users do not add up over days).";
  }
  function funnel(total) {
    if (!total.sessions) return empty("plot-funnel", "No sessions in this selection.");
    draw("plot-funnel", [{
      type: "funnel", y: ["Viewed", "Added to cart", "Purchased"],
      x: [total.view_sessions, total.cart_sessions, total.purchase_sessions],
      textinfo: "value+percent initial", marker: { color: ["#4c78a8", "#f58518", "#54a24b"] }
    }], { margin: { l: 110, r: 20, t: 10, b: 30 }, yaxis: { automargin: true } });
  }
  function funnelBy(s) {
    var dim = s.dim, rows;
    if (dim === "category") {
      var c = DATA.cube;
      rows = [];
      for (var i = 0; i < c.period.length; i++) {
        if (c.category[i] !== ALL && inRange(c.period[i], s) && (!s.category || c.category[i] === s.category)) rows.push(i);
      }
    } else {
      rows = cubeRows(s);
    }
    var groups = sum(rows, function (i) { return DATA.cube[dim][i]; });
    var keys = Object.keys(groups).sort();
    if (!keys.length) return empty("plot-funnel-by", "No sessions in this selection.");
    // Horizontal bars: long category names read in full in the left margin (below the bars,
    // slanted, they were cut and overlapped). Each purchase bar is labelled with the conversion rate.
    var stages = [["view_sessions", "Viewed"], ["cart_sessions", "Added to cart"], ["purchase_sessions", "Purchased (label: conversion rate)"]];
    var traces = stages.map(function (st, n) {
      var trace = { type: "bar", orientation: "h", name: st[1], y: keys, x: keys.map(function (k) { return groups[k][st[0]]; }) };
      if (n === 2) {
        trace.text = keys.map(function (k) { return fmt(ratio(groups[k].purchase_sessions, groups[k].sessions), "pct"); });
        trace.textposition = "outside"; trace.cliponaxis = false; trace.constraintext = "none"; trace.textfont = { size: 11 };
      }
      return trace;
    });
    // Each category gets room for its three bars and their label.
    el("plot-funnel-by").style.height = Math.max(340, 130 + 42 * keys.length) + "px";
    draw("plot-funnel-by", traces, {
      barmode: "group", margin: { l: 60, r: 50, t: 30, b: 50 }, xaxis: logAxis("sessions"),
      yaxis: axis(dim, { autorange: "reversed", type: "category" })
    });
  }
  function series(s) {
    var rows = cubeRows(s);
    var key = s.grain === "week" ? function (i) { return weekOf(DATA.cube.period[i]); } : function (i) { return DATA.cube.period[i]; };
    var groups = sum(rows, key), days = Object.keys(groups).sort();
    if (!days.length) return empty("plot-series", "No sessions in this selection.");
    var y = days.map(function (d) { var g = withRatios(groups[d]); return g[s.kpi]; });
    var traces = [{ type: "scatter", mode: "lines+markers", name: s.kpi, x: days, y: y, line: { color: "#4c78a8" } }];
    var note = "";
    var fc = DATA.forecasts && DATA.forecasts.series && DATA.forecasts.series[s.kpi];
    var sameCategory = (DATA.forecasts && DATA.forecasts.category || null) === (s.category || null);
    if (fc && s.grain === "day" && sameCategory) {
      var idx = fc.dates.map(function (d, i) { return i; }).filter(function (i) {
        return (!s.start || fc.dates[i] >= s.start) && (!s.end || fc.dates[i] <= s.end || fc.actual[i] === null);
      });
      var pick = function (a) { return idx.map(function (i) { return a[i]; }); };
      var x = pick(fc.dates);
      traces.push({ type: "scatter", mode: "lines", name: "interval", x: x, y: pick(fc.upper), line: { width: 0 }, showlegend: false, hoverinfo: "skip" });
      traces.push({ type: "scatter", mode: "lines", name: "95% interval", x: x, y: pick(fc.lower), fill: "tonexty", fillcolor: "rgba(245,133,24,0.18)", line: { width: 0 } });
      traces.push({ type: "scatter", mode: "lines", name: "ETS forecast", x: x, y: pick(fc.fitted), line: { color: "#f58518", dash: "dot" } });
      var out = idx.filter(function (i) { return fc.outside[i]; });
      traces.push({ type: "scatter", mode: "markers", name: "outside interval", x: out.map(function (i) { return fc.dates[i]; }), y: out.map(function (i) { return fc.actual[i]; }), marker: { color: "#b42318", size: 10, symbol: "x" } });
      note = out.length + " day(s) outside the one-step-ahead 95% interval of an ETS model (weekly season).";
    } else if (s.grain === "day") {
      note = "Forecasts are computed for the server's category filter; choose it (or use the live dashboard).";
    }
    var partial = DATA.forecasts && DATA.forecasts.partial_day;
    if (partial && s.grain === "day" && inRange(partial, s)) {
      note += " The last day, " + partial + ", is partial (no events in its last hour): shown, not judged.";
    }
    el("series-note").textContent = note;
    var title = s.kpi.replace(/_/g, " ");
    var yaxis = /revenue|aov/.test(s.kpi) ? moneyAxis(title) : axis(title, { tickformat: /rate/.test(s.kpi) ? ".2%" : "" });
    draw("plot-series", traces, { xaxis: axis("day"), yaxis: yaxis });
  }
  function exposureTotals(s) {
    var e = DATA.exposures; if (!e) return null;
    var t = { exposures: 0, clicked_exposures: 0, impressions: 0, clicks: 0, attributed_revenue: 0 };
    for (var i = 0; i < e.period.length; i++) if (inRange(e.period[i], s)) Object.keys(t).forEach(function (k) { t[k] += e[k][i] || 0; });
    return t;
  }
  function ctr(s) {
    var e = DATA.exposures;
    if (!e || !e.period.length) return empty("plot-ctr", "No exposure log in the store yet (serving writes it).");
    var groups = {};
    for (var i = 0; i < e.period.length; i++) {
      if (!inRange(e.period[i], s)) continue;
      var g = groups[e.period[i]] || (groups[e.period[i]] = { x: 0, c: 0, imp: 0, cl: 0 });
      g.x += e.exposures[i]; g.c += e.clicked_exposures[i]; g.imp += e.impressions[i]; g.cl += e.clicks[i];
    }
    var days = Object.keys(groups).sort();
    if (!days.length) return empty("plot-ctr", "No exposures in this date range.");
    // One day on a date axis is a point with no width: plotly draws nothing and labels the axis in
    // fractions of a millisecond. Days as categories draw the point and label it with its date.
    var xaxis = days.length < 3 ? axis("day shown", { type: "category" }) : axis("day shown");
    draw("plot-ctr", [
      { type: "scatter", mode: "lines+markers", name: "exposure CTR", x: days, y: days.map(function (d) { return ratio(groups[d].c, groups[d].x); }) },
      { type: "scatter", mode: "lines+markers", name: "item CTR", x: days, y: days.map(function (d) { return ratio(groups[d].cl, groups[d].imp); }) }
    ], { xaxis: xaxis, yaxis: axis("click-through rate", { tickformat: ".1%", rangemode: "tozero" }) });
  }
  function costTotals(s) {
    var c = DATA.costs; if (!c) return null;
    var t = { cost: 0, acquisitions: 0 };
    for (var i = 0; i < c.period.length; i++) if (c.period[i] && inRange(c.period[i], s)) { t.cost += c.cost[i]; t.acquisitions += c.acquisitions[i]; }
    return t;
  }
  function cpa(s) {
    var c = DATA.costs;
    if (!c || !c.period.length) return empty("plot-cpa", "No campaign costs loaded (fusionrec ingest --format costs).");
    var groups = {};
    for (var i = 0; i < c.period.length; i++) {
      if (!c.period[i] || !inRange(c.period[i], s)) continue;
      var g = groups[c.channel[i]] || (groups[c.channel[i]] = { cost: 0, acq: 0 });
      g.cost += c.cost[i]; g.acq += c.acquisitions[i];
    }
    var keys = Object.keys(groups).sort();
    if (!keys.length) return empty("plot-cpa", "No costs or acquisitions in this date range.");
    var spent = keys.reduce(function (t, k) { return t + groups[k].cost; }, 0);
    var won = keys.reduce(function (t, k) { return t + groups[k].acq; }, 0);
    if (!(spent > 0)) {
      return empty("plot-cpa", "No cost data for this date range, so no cost per acquisition: load campaign costs " +
        "(date, channel, campaign, cost) to see it. " + fmt(won, "int") + " new customers in the range.");
    }
    draw("plot-cpa", [
      { type: "bar", name: "cost per new customer", x: keys, y: keys.map(function (k) { return ratio(groups[k].cost, groups[k].acq); }) },
      { type: "scatter", mode: "markers", name: "new customers", yaxis: "y2", x: keys, y: keys.map(function (k) { return groups[k].acq; }), marker: { size: 10 } }
    ], { xaxis: axis("channel"), yaxis: moneyAxis("cost per new customer"), yaxis2: rightAxis("new customers") });
  }
  function retention(s) {
    var r = DATA.retention, cat = s.category || ALL, cells = {}, sizes = {};
    for (var i = 0; i < r.cohort.length; i++) {
      // A cohort week belongs to the range when it overlaps it.
      if (r.category[i] !== cat || (s.start && r.cohort[i] < weekOf(s.start)) || (s.end && r.week[i] > s.end)) continue;
      var k = Math.round((new Date(r.week[i]) - new Date(r.cohort[i])) / (7 * 864e5));
      cells[r.cohort[i] + "|" + k] = r.users[i];
      if (k === 0) sizes[r.cohort[i]] = r.users[i];
    }
    var cohorts = Object.keys(sizes).sort();
    if (!cohorts.length) return empty("plot-retention", "No cohorts in this selection.");
    var maxK = 0;
    Object.keys(cells).forEach(function (c) { maxK = Math.max(maxK, +c.split("|")[1]); });
    var weeks = []; for (var w = 0; w <= maxK; w++) weeks.push(w);
    var z = cohorts.map(function (c) {
      return weeks.map(function (w) { var v = cells[c + "|" + w]; return v === undefined ? null : v / sizes[c]; });
    });
    draw("plot-retention", [{
      type: "heatmap", x: weeks.map(function (w) { return "week " + w; }),
      y: cohorts.map(function (c) { return c + " (" + sizes[c] + ")"; }), z: z, colorscale: "Blues", reversescale: true,
      zmin: 0, zmax: 1, hovertemplate: "%{y}<br>%{x}: %{z:.1%}<extra></extra>"
    }], { margin: { l: 140, r: 20, t: 10, b: 40 }, xaxis: axis("weeks since first visit"), yaxis: axis("cohort (users)", { autorange: "reversed" }) });
  }
  function segments(s) {
    el("segments-note").textContent = DATA.segments_scope ? "Computed by the server over " + DATA.segments_scope +
      " (kept between filter changes; the filters above do not apply here)." : "Computed by the server for the filters it was given.";
    var rows = (DATA.segments || {})[s.seg] || [];
    if (!rows.length) { el("segments-table").innerHTML = ""; return empty("plot-segments", "No users in this selection."); }
    var names = rows.map(function (r) { return String(r.name); });
    draw("plot-segments", [
      { type: "bar", name: "users", x: names, y: rows.map(function (r) { return r.users; }) },
      { type: "scatter", mode: "markers", name: "spend per user", yaxis: "y2", x: names, y: rows.map(function (r) { return r.spend_per_user; }), marker: { size: 12, color: "#54a24b" } }
    ], { xaxis: axis("segment"), yaxis: logAxis("users"), yaxis2: rightAxis(DATA.currency ? "spend per user (" + DATA.currency + ")" : "spend per user") });
    table("segments-table", rows, [["name", "segment"], ["users", "users", function (v) { return fmt(v, "int"); }],
      ["share", "share", function (v) { return fmt(v, "pct"); }], ["recency_days", "days since active"],
      ["sessions_per_user", "sessions/user"], ["orders_per_user", "orders/user"],
      ["spend_per_user", "spend/user", function (v) { return fmt(v, "money"); }],
      ["conversion", "conversion", function (v) { return fmt(v, "pct"); }],
      ["favourite_categories", "favourite categories", function (v) { return esc(v); }]]);
  }
  function inCategory(path, cat) { return !cat || (path && (path === cat || path.indexOf(cat + " > ") === 0)); }
  // Support on a log axis (labelled at powers of ten) only when it spans a decade or more; else
  // linear: a log axis over a narrow range labels every minor tick, and they overlap.
  function supportAxis(rows) {
    var values = rows.map(function (r) { return r.support; });
    var low = Math.min.apply(null, values), high = Math.max.apply(null, values);
    if (low > 0 && high / low >= 10) return axis("support (share of baskets)", { type: "log", dtick: 1, tickformat: ".1%" });
    return axis("support (share of baskets)", { tickformat: ".1%", rangemode: "tozero", range: [0, high * 1.15], nticks: 8 });
  }
  function rules(s) {
    var all = (DATA.rules || {})[el("f-rules").value] || [];
    var rows = all.filter(function (r) { return inCategory(r.antecedent_category, s.category) || inCategory(r.consequent_category, s.category); });
    var least = DATA.rules_min_baskets || 2;
    el("rules-note").textContent = "Rules seen in " + least + " baskets or more; support = share of baskets with both items, confidence = share of baskets with the first that also have the second.";
    if (!rows.length) { el("rules-table").innerHTML = ""; return empty("plot-rules", "No rules seen in " + least + " baskets or more in this selection."); }
    draw("plot-rules", [{
      type: "scatter", mode: "markers", x: rows.map(function (r) { return r.support; }), y: rows.map(function (r) { return r.confidence; }),
      text: rows.map(function (r) { return esc(r.antecedent_title || r.antecedent) + " → " + esc(r.consequent_title || r.consequent) + "<br>lift " + fmt(r.lift); }),
      hoverinfo: "text", marker: { size: rows.map(function (r) { return 6 + Math.min(20, Math.log(1 + r.lift) * 3); }), color: rows.map(function (r) { return Math.log(r.lift); }), colorscale: "Viridis", showscale: true, colorbar: { title: { text: "log lift" } } }
    }], { xaxis: supportAxis(rows), yaxis: axis("confidence", { tickformat: ".0%", range: [0, 1.05] }) });
    table("rules-table", rows.slice(0, 15), [["antecedent_title", "if bought", function (v, r) { return esc(v || r.antecedent); }],
      ["consequent_title", "then also", function (v, r) { return esc(v || r.consequent); }],
      ["support", "support", function (v) { return fmt(v, "pct"); }], ["confidence", "confidence", function (v) { return fmt(v, "pct"); }],
      ["lift", "lift"], ["count", "baskets", function (v) { return fmt(v, "int"); }]]);
  }
  function experiments() {
    var list = (DATA.experiments || []).filter(function (e) { return !e.error; });
    if (!list.length) { el("experiments-table").innerHTML = ""; return empty("plot-experiments", "No experiments in the exposure log."); }
    var traces = [], html = "";
    list.forEach(function (e) {
      traces.push({
        type: "bar", name: e.experiment + ": conversion", x: e.arms.map(function (a) { return e.experiment + " / " + a.variant; }),
        y: e.arms.map(function (a) { return a.conversion; }),
        error_y: { type: "data", symmetric: false, array: e.arms.map(function (a) { return a.conversion_ci[1] - a.conversion; }), arrayminus: e.arms.map(function (a) { return a.conversion - a.conversion_ci[0]; }) }
      });
      var arms = e.arms.map(function (a) { return esc(a.variant) + (a.variant === e.control && !/^control$/i.test(a.variant) ? " (control)" : "") + ", " + fmt(a.users, "int") + " users"; });
      html += '<p class="experiment"><b>' + esc(e.experiment) + "</b>: " + arms.join(" against ") + "; sample-ratio check p = " + fmt(e.srm.p_value) +
        (e.srm.detected ? ' <span class="bad">SRM detected</span>' : ' <span class="good">no SRM</span>') +
        (e.notes.length ? "; " + esc(e.notes.join("; ")) : "") + "</p>";
      var verdicts = e.comparisons.filter(function (c) { return c.verdict; });
      if (verdicts.length) {
        html += '<ul class="verdicts">' + verdicts.map(function (c) {
          var cls = /^not enough|^no clear/.test(c.verdict) ? "" : (c.lift > 0 ? "good" : "bad");
          return '<li class="verdict ' + cls + '">' + esc(c.metric === "ctr" ? "Clicks" : "Conversion") + ": " + esc(c.verdict) + "</li>";
        }).join("") + "</ul>";
      }
      html += "<table><tr><th>variant</th><th>metric</th><th>control</th><th>treatment</th><th>lift</th><th>p</th><th>bootstrap 95% CI of diff</th><th>test</th></tr>";
      e.comparisons.forEach(function (c) {
        html += "<tr><td>" + esc(c.variant) + "</td><td>" + c.metric + "</td><td>" + fmt(c.control) + "</td><td>" + fmt(c.treatment) +
          "</td><td class='" + (c.significant ? (c.lift > 0 ? "good" : "bad") : "") + "'>" + fmt(c.lift, "pct") + "</td><td>" + fmt(c.p_value) +
          "</td><td>[" + fmt(c.bootstrap_ci[0]) + ", " + fmt(c.bootstrap_ci[1]) + "]</td><td>" + c.test + "</td></tr>";
      });
      e.guardrails.forEach(function (g) {
        html += "<tr><td>" + esc(g.variant) + "</td><td>guardrail: " + g.guardrail + "</td><td>" + fmt(g.control) + "</td><td>" + fmt(g.treatment) +
          "</td><td class='" + (g.status === "ok" ? "good" : "bad") + "'>" + g.status + "</td><td></td><td>[" + fmt(g.diff_ci[0]) + ", " + fmt(g.diff_ci[1]) + "]</td><td>bootstrap</td></tr>";
      });
      html += "</table>";
    });
    draw("plot-experiments", traces, { xaxis: axis("experiment / arm"), yaxis: axis("conversion (95% CI)", { tickformat: ".1%" }), showlegend: true });
    el("experiments-table").innerHTML = html;
  }
  function leaderboard() {
    var rows = DATA.leaderboard || [];
    if (!rows.length) { el("leaderboard-table").innerHTML = ""; return empty("plot-leaderboard", "No evaluation results given (fusionrec evaluate --json FILE, then report --leaderboard FILE)."); }
    var metric = null;
    rows.forEach(function (r) { Object.keys(r.metrics || {}).forEach(function (m) { if (!metric && /^NDCG@/.test(m)) metric = m; }); });
    metric = metric || Object.keys(rows[0].metrics || {})[0];
    var withMetric = rows.filter(function (r) { return r.metrics && r.metrics[metric] !== undefined; });
    draw("plot-leaderboard", [{
      type: "bar", x: withMetric.map(function (r) { return r.dataset + ": " + r.model + (r.source === "published" ? " (published)" : ""); }),
      y: withMetric.map(function (r) { return r.metrics[metric]; }), marker: { color: withMetric.map(function (r) { return r.source === "published" ? "#bab0ac" : "#4c78a8"; }) }
    }], { xaxis: axis("dataset: model", { tickangle: -20 }), yaxis: axis(metric) });
    table("leaderboard-table", withMetric, [["model", "model", function (v) { return esc(v); }], ["source", "source"], ["dataset", "dataset"],
      ["metrics", metric, function (v) { return fmt(v[metric]); }]]);
  }

  // --- recommendations by placement / model version, the version timeline ---------------------
  var REC_METRICS = {
    ctr: ["clicked_exposures", "exposures", "click-through rate (exposures)", ".1%"],
    conversion: ["purchases", "exposures", "conversion (attributed purchases per exposure)", ".2%"],
    attributed_revenue: ["attributed_revenue", null, "attributed revenue", null]
  };
  function recSeries(s) {
    var m = DATA.model_panels, by = el("f-rec-by").value, metric = el("f-rec-metric").value;
    if (!m) return empty("plot-rec-series", "Shown by the live dashboard (the service's exposure log).");
    var e = m.series;
    if (!e || !e.period.length) return empty("plot-rec-series", "No exposure log in the store yet (serving writes it when it answers).");
    var spec = REC_METRICS[metric], groups = {}, days = {};
    for (var i = 0; i < e.period.length; i++) {
      if (!inRange(e.period[i], s)) continue;
      var key = e[by][i], day = e.period[i];
      var g = groups[key] || (groups[key] = {});
      var cell = g[day] || (g[day] = { n: 0, d: 0 });
      cell.n += e[spec[0]][i] || 0; cell.d += spec[1] ? (e[spec[1]][i] || 0) : 0;
      days[day] = true;
    }
    var keys = Object.keys(groups).sort(), allDays = Object.keys(days).sort();
    if (!keys.length) return empty("plot-rec-series", "No exposures in this date range.");
    var traces = keys.map(function (k) {
      var ds = Object.keys(groups[k]).sort();
      return { type: "scatter", mode: "lines+markers", name: (by === "placement" ? "placement " : "version ") + k, x: ds,
        y: ds.map(function (d) { var c = groups[k][d]; return spec[1] ? ratio(c.n, c.d) : c.n; }), marker: { size: 5 } };
    });
    var xaxis = allDays.length < 3 ? axis("day shown", { type: "category" }) : axis("day shown");
    var yaxis = spec[1] ? axis(spec[2], { tickformat: spec[3], rangemode: "tozero" }) : moneyAxis(spec[2], { rangemode: "tozero" });
    draw("plot-rec-series", traces, { xaxis: xaxis, yaxis: yaxis, showlegend: true });
  }
  function versions(s) {
    var m = DATA.model_panels;
    if (!m) { el("versions-table").innerHTML = ""; return empty("plot-versions", "Shown by the live dashboard (the service's exposure log)."); }
    var rows = (m.timeline || []).filter(function (r) {
      return (!s.start || r.last_shown.slice(0, 10) >= s.start) && (!s.end || r.first_shown.slice(0, 10) <= s.end);
    });
    if (!rows.length) el("versions-table").innerHTML = "";
    if (!rows.length) return empty("plot-versions", (m.timeline || []).length ? "No model version served in this date range." : "No exposure log in the store yet: no version has served.");
    var names = rows.map(function (r) { return r.model_version; });
    // One bar per version from its first to its last exposure (a version that served minutes gets
    // a visible sliver: at least an hour wide); the figures are in the table below, not on the bars.
    var base = rows.map(function (r) { return r.first_shown; });
    var width = rows.map(function (r) { return Math.max(new Date(r.last_shown) - new Date(r.first_shown), 3600e3); });
    var span = function (r) { return r.first_shown.slice(0, 16).replace("T", " ") + " to " + r.last_shown.slice(0, 16).replace("T", " ") + " UTC"; };
    el("plot-versions").style.height = Math.max(220, 110 + 40 * rows.length) + "px";
    draw("plot-versions", [{
      type: "bar", orientation: "h", y: names, x: width, base: base, marker: { color: "#4c78a8" },
      hovertext: rows.map(function (r) { return r.model_version + ": " + span(r) + ", " + fmt(r.exposures, "int") + " exposures"; }),
      hoverinfo: "text"
    }], { margin: { l: 60, r: 20, t: 10, b: 50 }, xaxis: axis("time served (UTC)", { type: "date" }), yaxis: axis("model version", { type: "category", autorange: "reversed" }), showlegend: false });
    table("versions-table", rows, [["model_version", "version"], ["first_shown", "first served (UTC)", function (v) { return esc(v.slice(0, 16).replace("T", " ")); }],
      ["last_shown", "last served (UTC)", function (v) { return esc(v.slice(0, 16).replace("T", " ")); }],
      ["exposures", "exposures", function (v) { return fmt(v, "int"); }], ["days", "days served", function (v) { return fmt(v, "int"); }]]);
  }

  // --- per-user preview and training jobs (live dashboard only) --------------------------------
  function apiUrl(name) { return CONFIG.dataUrl ? CONFIG.dataUrl.replace(/\/data$/, "/" + name) : null; }
  function userPreview() {
    var box = el("user-preview"), id = el("f-user").value.trim();
    if (!apiUrl("user")) { box.innerHTML = '<p class="plot empty">The user preview needs the live dashboard (fusionrec serve).</p>'; return Promise.resolve(); }
    if (!id) { box.innerHTML = '<p class="plot empty">Enter a user id to see their recent events and what the active model recommends them (read-only: nothing is logged).</p>'; return Promise.resolve(); }
    box.innerHTML = '<p class="note">loading…</p>';
    return fetch(apiUrl("user") + "?user_id=" + encodeURIComponent(id)).then(function (r) { return r.json(); }).then(function (u) {
      var html = '<div class="cols"><div><h3>Recent events of ' + esc(u.user_id) + "</h3>";
      if (!u.events.length) html += '<p class="plot empty">No events stored for this user.</p>';
      else html += "<table id='user-events'><tr><th>time (UTC)</th><th>event</th><th>item</th><th>category</th></tr>" + u.events.map(function (e) {
        return "<tr><td>" + esc(String(e.ts).slice(0, 19).replace("T", " ")) + "</td><td class='text'>" + esc(e.event_type) + "</td><td class='text'>" +
          esc(e.title || e.item_id || "–") + "</td><td class='text'>" + esc(e.category || "–") + "</td></tr>";
      }).join("") + "</table>";
      html += "</div><div>";
      var rec = u.recommendations;
      if (!rec) html += '<h3>Recommendations</h3><p class="plot empty">No service attached to this dashboard: recommendations are shown by the service\'s dashboard.</p>';
      else (rec.answers || [rec]).forEach(function (a, n) {
        var title = "Recommended by " + esc(a.model_version || "–") + (a.label ? " (" + esc(a.label) + ")" : "") +
          (a.fallback ? ", fallback " + esc(a.fallback) : "") + (n === 0 && !rec.known_user ? ", a user the model has not seen" : "");
        if (!a.items || !a.items.length) { html += "<h3>" + title + '</h3><p class="plot empty">Nothing to recommend to this user (' + esc(a.fallback || "no model") + ").</p>"; return; }
        html += "<h3>" + title + "</h3><table class='user-recs'" + (n === 0 ? " id='user-recs'" : "") + "><tr><th>#</th><th>item</th><th>category</th><th>score</th><th>proposed by</th></tr>" + a.items.map(function (it, i) {
          return "<tr><td>" + (i + 1) + "</td><td class='text'>" + esc(it.title || it.item_id) + "</td><td class='text'>" + esc(it.category || "–") + "</td><td>" +
            fmt(it.score) + "</td><td class='text'>" + esc((it.sources || []).join(", ") || "–") + "</td></tr>";
        }).join("") + "</table>";
      });
      box.innerHTML = html + "</div></div>";
    }).catch(function (err) { box.innerHTML = '<p class="plot empty">Could not load the user: ' + esc(err.message) + "</p>"; });
  }
  function when(t) { return t ? new Date(t * 1000).toISOString().slice(0, 19).replace("T", " ") : "–"; }
  function trainingPanel() {
    var box = el("training");
    if (!apiUrl("training")) { box.innerHTML = '<p class="plot empty">Training jobs are shown by the live dashboard (fusionrec serve).</p>'; return Promise.resolve(); }
    return fetch(apiUrl("training")).then(function (r) { return r.json(); }).then(function (t) {
      var html = "", st = t.training;
      if (!st) html += '<p class="plot empty">No service attached to this dashboard: training jobs are shown by the service\'s dashboard.</p>';
      else if (st.state === "idle") html += '<p class="plot empty">No training run since the service started (POST /v1/models/train, or [serving] retrain_every_s).</p>';
      else {
        html += '<p id="training-state"><b>' + esc(st.state === "running" ? "Running" : st.state === "done" ? "Last run done" : "Last run failed") + "</b>: " + esc(st.model || "pipeline") +
          ", started " + when(st.started_at) + " UTC" + (st.seconds !== undefined ? ", took " + st.seconds + " s" : "") + (st.version ? ", made " + esc(st.version) : "") +
          (st.error ? ': <span class="bad">' + esc(st.error) + "</span>" : "") + "</p>";
        var p = st.progress;
        if (st.state === "running" && p) {
          var share = p.total ? Math.min(1, p.done / p.total) : null;
          html += "<p class='note'>" + esc(p.task) + (p.total ? ": " + p.done + " of " + p.total : "") + (p.detail ? " (" + esc(p.detail) + ")" : "") + "</p>" +
            (share !== null ? "<div class='progress'><div style='width:" + (100 * share).toFixed(1) + "%'></div></div>" : "");
        }
      }
      if ((t.history || []).length) {
        html += "<h3>Runs since the service started</h3><table id='training-history'><tr><th>started (UTC)</th><th>model</th><th>trigger</th><th>state</th><th>seconds</th><th>version</th></tr>" +
          t.history.map(function (h) { return "<tr><td>" + when(h.started_at) + "</td><td class='text'>" + esc(h.model || "–") + "</td><td class='text'>" + esc(h.trigger || "–") +
            "</td><td class='text " + (h.state === "failed" ? "bad" : "good") + "'>" + esc(h.state) + "</td><td>" + fmt(h.seconds) + "</td><td class='text'>" + esc(h.version || h.error || "–") + "</td></tr>"; }).join("") + "</table>";
      }
      if ((t.versions || []).length) {
        html += "<h3>Model versions</h3><table id='training-versions'><tr><th>version</th><th>model</th><th>trained (UTC)</th><th>by</th><th>active</th><th>metrics</th></tr>" +
          t.versions.map(function (v) { return "<tr><td>" + esc(v.version) + "</td><td class='text'>" + esc(v.model || v.error || "–") + "</td><td class='text'>" + esc(String(v.created_at || "–").slice(0, 19).replace("T", " ")) +
            "</td><td class='text'>" + esc(v.trained_by || "–") + "</td><td class='text'>" + (v.active ? "active" : "") + "</td><td class='text'>" +
            esc(Object.keys(v.metrics || {}).slice(0, 3).map(function (k) { return k + " " + fmt(v.metrics[k]); }).join(", ")) + "</td></tr>"; }).join("") + "</table>";
      } else if (st) html += '<p class="plot empty">No model version in the model directory yet (fusionrec train).</p>';
      box.innerHTML = html;
      if (st && st.state === "running") setTimeout(trainingPanel, 3000);  // progress while it runs
    }).catch(function (err) { box.innerHTML = '<p class="plot empty">Could not load training jobs: ' + esc(err.message) + "</p>"; });
  }

  function render() {
    var s = state(), total = withRatios(sum(cubeRows(s)));
    tiles(s, total); funnel(total); funnelBy(s); series(s); ctr(s); cpa(s); retention(s); segments(s); rules(s); recSeries(s); versions(s); experiments(); leaderboard();
    document.body.setAttribute("data-rendered", String(Date.now()));
  }

  function setup() {
    var cat = el("f-category");
    (DATA.categories || []).forEach(function (c) { var o = document.createElement("option"); o.value = c; o.textContent = c; cat.appendChild(o); });
    SERIES_KPIS.forEach(function (k) { var o = document.createElement("option"); o.value = k; o.textContent = k.replace(/_/g, " "); el("f-kpi").appendChild(o); });
    var f = DATA.filters || {};
    el("f-start").value = f.start || DATA.bounds.first_day || ""; el("f-end").value = f.end || DATA.bounds.last_day || "";
    el("f-start").min = el("f-end").min = DATA.bounds.first_day || ""; el("f-start").max = el("f-end").max = DATA.bounds.last_day || "";
    if (f.category) cat.value = f.category;
    el("f-user-go").addEventListener("click", userPreview);
    el("f-user").addEventListener("keydown", function (e) { if (e.key === "Enter") userPreview(); });
    trainingPanel();
    ["f-dim", "f-kpi", "f-grain", "f-seg", "f-rules", "f-rec-by", "f-rec-metric"].forEach(function (id) { el(id).addEventListener("change", render); });
    ["f-start", "f-end", "f-category"].forEach(function (id) { el(id).addEventListener("change", CONFIG.dataUrl ? reload : render); });
  }

  // The live dashboard keeps its data between filter changes: say how old it is.
  function updated(data) {
    return "updated " + data.generated_at + (data.data_as_of && data.data_as_of !== data.generated_at ? " (data as of " + data.data_as_of + ")" : "");
  }

  function reload() {
    var s = state(), params = new URLSearchParams();
    if (s.start) params.set("start", s.start);
    if (s.end) params.set("end", s.end);
    if (s.category) params.set("category", s.category);
    el("status").textContent = "loading…";
    return fetch(CONFIG.dataUrl + "?" + params.toString()).then(function (r) {
      if (!r.ok) return r.text().then(function (t) { throw new Error(t); });
      return r.json();
    }).then(function (data) {
      DATA = data; el("status").textContent = updated(data); render();
    }).catch(function (err) { el("status").textContent = "could not load: " + err.message; });
  }

  function start() {
    if (DATA) { setup(); render(); el("status").textContent = "report of " + DATA.generated_at; return; }
    el("status").textContent = "loading…";
    fetch(CONFIG.dataUrl + "?fresh=1").then(function (r) { return r.json(); }).then(function (data) {
      DATA = data; setup(); render(); el("status").textContent = updated(data);
    }).catch(function (err) { el("status").textContent = "could not load: " + err.message; });
  }
  window.fusionrecRender = render;
  start();
})();
