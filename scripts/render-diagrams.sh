#!/usr/bin/env bash
# render-diagrams.sh - render every Graphviz drawing docs/NAME.dot to docs/NAME.svg, or check that each
# committed SVG was rendered from its current source.
#
# The SVG is what readers see (docs/architecture.md embeds it); the .dot file is what we edit. A
# drawing that no longer matches its source is wrong documentation, so `make test` checks it (step
# layer-checks, scripts/check-layer.sh). The check must not depend on the renderer: Graphviz's SVG
# varies with its version and the fonts installed, so re-rendering and comparing would fail on a
# machine that differs from the author's. Instead the render writes one provenance line into the
# SVG: the sha256 of the source and the sha256 of the SVG without that line. --check recomputes both:
# an edited .dot, a hand-edited SVG and a missing SVG all fail. It needs no Graphviz and takes
# milliseconds.
#
# Usage: scripts/render-diagrams.sh            render (needs `dot`, from scripts/setup-host.sh)
#        scripts/render-diagrams.sh --check    verify; exit 1 naming every stale drawing
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
MARK="rendered by scripts/render-diagrams.sh"

check=0
case "${1:-}" in
--check) check=1 ;;
"") ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

sha() { sha256sum | cut -d' ' -f1; }

shopt -s nullglob
sources=("$TOP"/docs/*.dot)
[ "${#sources[@]}" -gt 0 ] || { echo "render-diagrams: no docs/*.dot" >&2; exit 1; }

stale=0
for src in "${sources[@]}"; do
	name=${src#"$TOP"/}
	svg=${src%.dot}.svg
	src_sha=$(sha <"$src")
	if [ "$check" = 1 ]; then
		if [ ! -f "$svg" ]; then
			echo "render-diagrams: ${svg#"$TOP"/} is missing: run \`make diagrams\`" >&2
			stale=$((stale + 1))
			continue
		fi
		line=$(grep -m1 -F "<!-- $MARK " "$svg" || true)
		recorded_src=$(sed -n 's/.* source sha256 \([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
		recorded_svg=$(sed -n 's/.* svg sha256 \([0-9a-f]\{64\}\).*/\1/p' <<<"$line")
		body_sha=$(grep -v -F "<!-- $MARK " "$svg" | sha)
		if [ -z "$line" ]; then
			echo "render-diagrams: ${svg#"$TOP"/} has no provenance line: run \`make diagrams\`" >&2
			stale=$((stale + 1))
		elif [ "$recorded_src" != "$src_sha" ]; then
			echo "render-diagrams: ${svg#"$TOP"/} is stale: $name changed since it was rendered; run \`make diagrams\`" >&2
			stale=$((stale + 1))
		elif [ "$recorded_svg" != "$body_sha" ]; then
			echo "render-diagrams: ${svg#"$TOP"/} was edited by hand: edit $name and run \`make diagrams\`" >&2
			stale=$((stale + 1))
		else
			echo "render-diagrams: ${svg#"$TOP"/} is up to date with $name"
		fi
		continue
	fi
	command -v dot >/dev/null || { echo "render-diagrams: dot not found: run scripts/setup-host.sh (graphviz)" >&2; exit 1; }
	body=$(mktemp)
	dot -Tsvg "$src" >"$body"
	body_sha=$(sha <"$body")
	# The provenance comment goes after the XML declaration, which must stay the first line.
	{
		head -n 1 "$body"
		echo "<!-- $MARK from $name: source sha256 $src_sha svg sha256 $body_sha -->"
		tail -n +2 "$body"
	} >"$svg.tmp"
	rm -f "$body"
	mv "$svg.tmp" "$svg"
	echo "render-diagrams: $name -> ${svg#"$TOP"/}"
done
[ "$stale" = 0 ]
