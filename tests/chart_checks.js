var el = arguments[0];
var problems = [];
var svg = el.querySelector('svg');
if (!svg) { return ['no SVG']; }
var title = (svg.querySelector('g.role-title text') || {}).textContent || el.id;
function shown(t) {
  for (var n = t; n && n !== svg; n = n.parentNode) {
    var s = getComputedStyle(n);
    if (s.opacity === '0' || s.visibility === 'hidden' || s.display === 'none' || n.getAttribute('opacity') === '0') return false;
  }
  return true;
}
// 1. every data mark item has a visible extent
var empty = 0, total = 0;
svg.querySelectorAll('g.role-mark').forEach(function (g) {
  var m = (g.getAttribute('class') || '').match(/mark-(rect|symbol|area|line)\b/);
  if (!m) return;
  g.querySelectorAll(':scope > path').forEach(function (p) {
    total++;
    var r = p.getBoundingClientRect();
    var visible = m[1] === 'line' ? (r.width >= 1 || r.height >= 1) : (r.width >= 1 && r.height >= 1);
    if (!visible) empty++;
  });
});
if (total === 0) problems.push('no data marks');
if (empty) problems.push(empty + ' of ' + total + ' data marks have no visible extent');
// 2. every continuous axis has at least 3 labelled ticks
svg.querySelectorAll('g.role-axis[aria-label]').forEach(function (g) {
  var aria = g.getAttribute('aria-label');
  if (/discrete scale/.test(aria)) return;
  var labels = Array.from(g.querySelectorAll('g.role-axis-label text')).filter(function (t) { return t.textContent.trim() && shown(t); });
  if (labels.length < 3) problems.push('axis with ' + labels.length + ' labelled tick(s): ' + aria.slice(0, 90));
});
// 3. no two text labels overlap
var texts = Array.from(svg.querySelectorAll('text')).filter(function (t) {
  var r = t.getBoundingClientRect(); return t.textContent.trim() && r.width > 0 && r.height > 0 && shown(t);
}).map(function (t) { return {t: t.textContent.trim(), r: t.getBoundingClientRect()}; });
var overlaps = [];
for (var i = 0; i < texts.length; i++) for (var j = i + 1; j < texts.length; j++) {
  var a = texts[i].r, b = texts[j].r;
  var w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
  if (w > 2 && h > 2) overlaps.push(texts[i].t + ' / ' + texts[j].t);
}
if (overlaps.length) problems.push(overlaps.length + ' overlapping label pair(s): ' + overlaps.slice(0, 4).join('; '));
return {title: title, problems: problems};
