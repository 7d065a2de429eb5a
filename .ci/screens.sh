#!/usr/bin/env bash
# Screenshots of built pages in headless Chromium with the network off (a dead proxy for every
# host), at 1280 px wide, a DOM check that MathJax typeset the math (mjx-container present), and
# the display equations wider than the text column (they would scroll sideways).
# Usage: .ci/screens.sh HTML_DIR OUT_DIR page[:height] ...   (page relative to HTML_DIR, no .html)
set -euo pipefail
html=$1; out=$2; shift 2
mkdir -p "$out"
for spec in "$@"; do
  page=${spec%%:*}; height=${spec#*:}; [ "$height" = "$spec" ] && height=2400
  name=$(echo "$page" | tr '/' '_')
  flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars
         --proxy-server=127.0.0.1:9 --proxy-bypass-list='<-loopback>'
         --virtual-time-budget=8000 --window-size=1280,"$height")
  chromium "${flags[@]}" --screenshot="$out/$name.png" "file://$html/$page.html" 2>/dev/null
  chromium "${flags[@]}" --dump-dom "file://$html/$page.html" 2>/dev/null > "$out/$name.dom.html"
  echo "$page: $(grep -o '<mjx-container' "$out/$name.dom.html" | wc -l) typeset formulas," \
       "$(grep -c 'class="math' "$out/$name.dom.html" || true) math blocks in source"
  # a copy of the page beside it (same relative links) with a script that lists, once MathJax is
  # done, the display equations whose typeset width exceeds their block's width
  probe="$html/${page}.__width_probe.html"
  python3 - "$html/$page.html" "$probe" <<'PY'
import sys
js = """<script>window.addEventListener('load', function () { setTimeout(function () {
  function check() { var wide = [];
    document.querySelectorAll('mjx-container[display="true"]').forEach(function (e) {
      var block = e.closest('div.math') || e.parentElement, eq = e.firstElementChild;
      var w = eq ? eq.getBoundingClientRect().width : 0;
      if (w > block.clientWidth + 2) wide.push(Math.round(w) + ' px > ' + block.clientWidth + ' px: '
                                               + e.textContent.slice(0, 40)); });
    document.body.setAttribute('data-wide-math', wide.join(' | ') || 'none'); }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) MathJax.startup.promise.then(check);
  else check(); }, 500); });</script></body>"""
open(sys.argv[2], "w").write(open(sys.argv[1]).read().replace("</body>", js))
PY
  wide=$(chromium "${flags[@]}" --dump-dom "file://$probe" 2>/dev/null | grep -o 'data-wide-math="[^"]*"' || true)
  rm -f "$probe"
  echo "  display equations wider than the column: ${wide:-not checked (no result)}"
done
