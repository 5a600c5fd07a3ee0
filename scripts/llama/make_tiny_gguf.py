"""Writes a tiny random-weight llama-architecture model as GGUF, for testing servers that load GGUF files
(llama.cpp's, through llama-cpp-python) without downloading anything.

    python scripts/llama/make_tiny_gguf.py OUT.gguf [--seed N]

Needs the `gguf` and `numpy` packages (both in .venv-llama, see mk/llama.mk). About 0.5 MB, written in well
under a second. The model is nonsense, but a well-formed one: 2 layers, hidden size 64, 4 heads, a
SentencePiece-style ("llama") vocabulary of the 3 control tokens, the 256 byte tokens and a few hundred
"▁word" pieces, a context of 512 and a small chat template.

Its answers are chosen so that a test can rely on their shape, never their text: the output layer gives the
byte and control tokens (end of sequence included) a logit of exactly 0 and every word piece a random one
with a spread of about 6, so greedy decoding (temperature 0) always picks a word piece. Every generated
token is then a non-empty piece of ASCII text (no half UTF-8 sequences, no early end), and with
temperature 0 the same prompt always gives the same answer.
"""
from __future__ import annotations

import argparse
import string
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - the message is the point
    sys.exit("make_tiny_gguf.py needs the gguf package (pip install gguf numpy; .venv-llama has both)")

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 4
N_FF = 128
N_CTX = 512
RMS_EPS = 1e-5

# Jinja, rendered by llama-cpp-python (Jinja2ChatFormatter) and by llama.cpp's own template engine alike.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and types: <unk>, <s>, </s>, the 256 byte tokens, then word pieces (higher score first)."""
    tokens = ["<unk>", "<s>", "</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(gguf.TokenType.BYTE)
        scores.append(0.0)
    words = ["the", "order", "is", "on", "its", "way", "hello", "where", "my", "a", "to", "and", "you", "it",
             "say", "hi", "help", "me", "of", "in", "for", "that", "with", "this", "be", "are", "not", "will"]
    pieces = [f"\u2581{w}" for w in words]
    pieces += ["\u2581" + c for c in string.ascii_lowercase if "\u2581" + c not in pieces]
    pieces += [c for c in string.ascii_lowercase + string.digits + ".,!?"]
    seen = set(tokens)
    score = -1.0
    for p in pieces:
        if p in seen:
            continue
        seen.add(p)
        tokens.append(p)
        types.append(gguf.TokenType.NORMAL)
        scores.append(score)
        score -= 1.0
    return tokens, scores, [int(t) for t in types]


def write(path: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    first_piece = types.index(int(gguf.TokenType.NORMAL))

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)

    w = gguf.GGUFWriter(path, "llama")
    w.add_name("bakeoff-tiny-random")
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_vocab_size(n_vocab)
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD_KV)
    w.add_layer_norm_rms_eps(RMS_EPS)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)

    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHAT_TEMPLATE)

    # numpy shapes are ggml's dimensions reversed: a (rows, cols) array is a ggml tensor of ne = [cols, rows].
    w.add_tensor("token_embd.weight", mat(n_vocab, N_EMBD, 1.0))
    for i in range(N_LAYER):
        s = 1.0 / np.sqrt(N_EMBD)
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", mat(N_EMBD, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_k.weight", mat(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_v.weight", mat(N_EMBD // N_HEAD * N_HEAD_KV, N_EMBD, s))
        w.add_tensor(f"blk.{i}.attn_output.weight", mat(N_EMBD, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", mat(N_FF, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_up.weight", mat(N_FF, N_EMBD, s))
        w.add_tensor(f"blk.{i}.ffn_down.weight", mat(N_EMBD, N_FF, 1.0 / np.sqrt(N_FF)))
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    # The final hidden state is RMS-normalised (norm ~ sqrt(N_EMBD)), so rows of spread 6/sqrt(N_EMBD) give word
    # pieces logits of spread ~6; byte and control tokens get 0, far below the best of ~90 word pieces.
    output = mat(n_vocab, N_EMBD, 6.0 / np.sqrt(N_EMBD))
    output[:first_piece] = 0.0
    w.add_tensor("output.weight", output)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return {"path": path, "n_vocab": n_vocab, "n_ctx": N_CTX, "bos": 1, "eos": 2, "first_piece": first_piece}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="the .gguf file to write")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    info = write(args.out, args.seed)
    print(f"wrote {info['path']}: {info['n_vocab']} tokens, context {info['n_ctx']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
