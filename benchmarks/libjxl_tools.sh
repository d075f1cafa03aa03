#!/usr/bin/env bash
# libjxl's own metric tools (butteraugli_main, ssimulacra2; libjxl 0.11) on a Debian 12 machine, whose libjxl 0.7
# ships none: downloads Debian 13's libjxl-devtools and the libraries it needs (Debian's archive, through apt),
# unpacks them into DIR (default .libjxl, ignored by git) and writes DIR/butteraugli_main and DIR/ssimulacra2,
# which run them with Debian 13's loader and libraries. Nothing is installed system-wide.
#   benchmarks/libjxl_tools.sh [DIR]
#   export DIFFCODEC_BUTTERAUGLI=$PWD/.libjxl/butteraugli_main
set -euo pipefail
DIR=$(realpath -m "${1:-.libjxl}")
mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial" "$DIR/debs" "$DIR/root"
cat > "$DIR/apt/trixie.sources" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
APT=(-o "Dir::Etc::sourcelist=$DIR/apt/trixie.sources" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$DIR/apt/lists"
     -o "Dir::Cache=$DIR/apt/cache" -o Dir::State::status=/dev/null)
apt-get "${APT[@]}" update -qq
PKGS=$(apt-cache "${APT[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
       --no-replaces --no-enhances libjxl-devtools | grep '^\w' | sort -u)
(cd "$DIR/debs" && apt-get "${APT[@]}" download $PKGS 2>&1 | grep -v unsandboxed || true)
for f in "$DIR"/debs/*.deb; do dpkg -x "$f" "$DIR/root"; done
for tool in butteraugli_main ssimulacra2; do
  cat > "$DIR/$tool" <<SH
#!/bin/sh
R="$DIR/root"
exec "\$R/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$R/usr/lib/x86_64-linux-gnu" "\$R/usr/bin/$tool" "\$@"
SH
  chmod +x "$DIR/$tool"
done
"$DIR/ssimulacra2" 2>&1 | head -1 || true
echo "export DIFFCODEC_BUTTERAUGLI=$DIR/butteraugli_main"
