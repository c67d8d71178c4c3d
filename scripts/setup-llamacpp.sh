#!/usr/bin/env bash
# Installs llama.cpp's OpenAI-compatible server (PyPI llama-cpp-python[server], pinned in
# tests/llamacpp/requirements.txt) into tests/llamacpp/.venv: the real model server that
# tests/llamacpp.rs checks the remote writer against, serving the same GGUF as the local
# writer. pip compiles llama.cpp for this CPU the first time (about 10 minutes on two cores)
# and keeps the wheel in its cache; later installs take seconds.
set -euo pipefail
dir="$(dirname "$0")/../tests/llamacpp"
if [ ! -x "$dir/.venv/bin/python" ] || ! "$dir/.venv/bin/python" -c 'import llama_cpp.server' 2> /dev/null; then
    echo "installing llama.cpp's server (tests/llamacpp/.venv; compiled once, then cached by pip)"
fi
CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=ON}" "$(dirname "$0")/python-venv.sh" "$dir"
