#!/usr/bin/env sh
# The system programs some tests drive, from Debian's packages: chromium (the web page's
# browser tests, through playwright), docker-compose (validates docker-compose.yml) and
# tesseract (OCR of scanned PDF pages with RAG_OCR on; the English model is a separate package).
# Installed only when missing and when this runs as root with apt-get (CI, containers); on
# your own machine it prints what to install, and those tests skip with the reason.
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
command -v tesseract >/dev/null 2>&1 || missing="$missing tesseract-ocr tesseract-ocr-eng"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing$missing (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine may have no package lists yet: update only if the first try fails.
    apt-get install -y -q $missing \
        || { apt-get update -q && apt-get install -y -q $missing; }
else
    echo "note: not installed:$missing. The tests that need them will skip;" \
         "install them (e.g. sudo apt-get install$missing) to run those too."
fi
