#!/usr/bin/env bash
# Screenshots of built pages in headless Chromium with the network off (a dead proxy for every
# host), at 1280 px wide, and a DOM check that MathJax typeset the math (mjx-container present).
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
done
