#!/usr/bin/env python3
"""Reference token generation for the `s6-run generate` tests.

For each model below, fixtures/generate/<name>/ holds
  prompt.npy    int64 (batch, P) prompt ids
  tokens.npy    int64 (batch, N) the ids transformers' generate(do_sample=False, use_cache=True)
                returns after the prompt (mamba-minimal, which has no generate(): greedy
                argmax of a full forward over the whole sequence at every step)
  logits.npy    float32 (batch, N, vocab) the logits each new token was picked from
  meta.json     model, the fixture exports it matches, the smallest top-1/top-2 logit margin

Of PROMPT_TRIALS random prompts, the one whose continuation has the most distinct tokens among
those where every step of every row has a top-1/top-2 margin of at least MARGIN is kept, so
that an implementation within 1e-5 of PyTorch picks the same tokens, and a wrong state shows
up as a different sequence (random tied-embedding models tend to repeat one token).

Models:
  hf       transformers MambaForCausalLM of scripts/export_mamba.py (exports hf_ts_L12,
           hf_ts_L7, hf_dynamo_L12, hf_dynamo_L7, hf_dynamo_L1)
  minimal  the mamba-minimal-style model of scripts/export_mamba.py (minimal_*)
  hf3c3    a new 3-layer transformers Mamba with d_conv = 3, exported here (TorchScript, L 8)
           to fixtures/models/hf_ts_3l_conv3_L8/; untied embeddings, so its continuations vary
  hf2      transformers Mamba2ForCausalLM of scripts/export_mamba2.py (exports
           hf2_dynamo_dynseq_L12, hf2_dynamo_dynbs_b2_L12); its default time_step_limit
           (0, inf) keeps transformers' decode path (which ignores the limits) equal to its
           prefill

Also fixtures/generate/tokenizer.json: a tiny word-level tokenizer over the 96 ids, and
fixtures/generate/text_case.json: a text prompt, its ids, the greedy continuation of the hf
model and its decoded text.

Run: /work/pyenv/bin/python scripts/make_generate_fixtures.py [--only NAME ...]
(--only remakes just those cases, leaving the other fixtures as they are)
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(__file__))
import export_mamba as em  # noqa: E402
import export_mamba2 as em2  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "fixtures")
OUT = os.path.join(ROOT, "generate")
NEW_TOKENS = 32
PROMPT_LEN = 6
BATCH = 2
MARGIN = 2e-3
PROMPT_TRIALS = 40

WORDS = (
    "the a an of to in on at by for with from and or but not is was are be it this that "
    "cat dog bird fish tree sun moon star rain snow wind fire sea sky road house door "
    "red blue green black white big small old new fast slow hot cold good bad happy sad "
    "run walk sit eat see go come make take give find think know say tell ask work play "
    "one two three four five six seven eight nine ten day night up down here there now then yes no"
).split()


def build_hf3c3():
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(
        vocab_size=em.VOCAB,
        hidden_size=em.HIDDEN,
        state_size=em.STATE,
        num_hidden_layers=3,
        expand=em.EXPAND,
        conv_kernel=3,
        use_cache=False,
        use_mambapy=False,
        tie_word_embeddings=False,
    )
    torch.manual_seed(em.SEED + 10)
    model = MambaForCausalLM(cfg).eval()
    em.perturb(model)
    return model


def export_hf3c3(model):
    name, length = "hf_ts_3l_conv3_L8", 8
    folder = os.path.join(ROOT, "models", name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    path = os.path.join(folder, "model.onnx")
    wrapped = em.HFLogits(model).eval()
    ids = em.make_ids(length, 7)
    m = em.export(wrapped, ids, path, False, 17)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (ort_out,) = sess.run(None, {"input_ids": ids})
    with torch.no_grad():
        torch_out = wrapped(torch.from_numpy(ids)).numpy()
    err = float(np.max(np.abs(ort_out - torch_out)))
    assert err < 1e-4, err
    em.write_npys(os.path.join(folder, "inputs"), {"input_ids": ids})
    em.write_npys(os.path.join(folder, "expected"), {"logits": ort_out})
    meta = {
        "exporter": "ts",
        "model": "transformers.MambaForCausalLM",
        "seq_len": length,
        "batch": 1,
        "hidden": em.HIDDEN,
        "d_inner": em.EXPAND * em.HIDDEN,
        "d_state": em.STATE,
        "d_conv": 3,
        "layers": 3,
        "vocab": em.VOCAB,
        "input": "input_ids",
        "output": "logits",
        "nodes": len(m.graph.node),
        "ort_vs_torch_max_abs": err,
        "made_by": "scripts/make_generate_fixtures.py",
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: {len(m.graph.node)} nodes, ort vs torch {err:.2e}", file=sys.stderr)


def hf_generate(model, prompt):
    with torch.no_grad():
        out = model.generate(
            torch.from_numpy(prompt),
            attention_mask=torch.ones(prompt.shape, dtype=torch.long),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            use_cache=True,
            eos_token_id=None,
            pad_token_id=0,
            output_logits=True,
            return_dict_in_generate=True,
        )
    tokens = out.sequences[:, prompt.shape[1]:].numpy()
    logits = torch.stack(out.logits, dim=1).float().numpy()
    return tokens, logits


def full_recompute_generate(forward, prompt):
    """Greedy by re-running the whole sequence every step (no cache at all)."""
    seq = torch.from_numpy(prompt)
    steps = []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            last = forward(seq)[:, -1, :]
            steps.append(last)
            seq = torch.cat([seq, last.argmax(-1, keepdim=True)], dim=1)
    tokens = seq[:, prompt.shape[1]:].numpy()
    return tokens, torch.stack(steps, dim=1).numpy()


def margin(logits):
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return float(np.min(top2[..., 1] - top2[..., 0]))


def make_case(name, generate, exports, full_forward=None, vocab=em.VOCAB):
    best = None
    for salt in range(PROMPT_TRIALS):
        rng = np.random.default_rng(em.SEED + 1000 + salt)
        prompt = rng.integers(0, vocab, size=(BATCH, PROMPT_LEN), dtype=np.int64)
        tokens, logits = generate(prompt)
        m = margin(logits)
        distinct = min(len(set(r)) for r in tokens.tolist())
        if m >= MARGIN and (best is None or (distinct, m) > (best[0], best[1])):
            best = (distinct, m, salt, prompt, tokens, logits)
    if best is None:
        sys.exit(f"{name}: no prompt with margin {MARGIN} found")
    distinct, m, salt, prompt, tokens, logits = best
    if full_forward is not None:
        # The cached generate must agree with recomputing everything (checks the reference).
        t2, l2 = full_recompute_generate(full_forward, prompt)
        assert (t2 == tokens).all(), f"{name}: cached and full-recompute tokens differ"
        assert np.abs(l2 - logits).max() < 1e-4, np.abs(l2 - logits).max()
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    em.write_npys(folder, {"prompt": prompt, "tokens": tokens, "logits": logits.astype(np.float32)})
    meta = {
        "exports": exports,
        "prompt_shape": list(prompt.shape),
        "new_tokens": NEW_TOKENS,
        "min_top1_top2_margin": m,
        "prompt_salt": salt,
        "min_distinct_tokens_per_row": distinct,
    }
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: prompt salt {salt}, min margin {m:.3e}, {distinct} distinct", file=sys.stderr)
    return prompt, tokens


def make_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    words = ["<unk>"] + WORDS
    assert len(words) >= em.VOCAB, len(words)
    words = words[: em.VOCAB]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    path = os.path.join(OUT, "tokenizer.json")
    tok.save(path)
    return Tokenizer.from_file(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=["hf", "minimal", "hf3c3", "hf2", "text"])
    args = ap.parse_args()
    want = lambda name: args.only is None or name in args.only  # noqa: E731
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    hf, _ = em.build_hf()
    if want("hf"):
        hf_exports = ["hf_ts_L12", "hf_ts_L7", "hf_dynamo_L12", "hf_dynamo_L7", "hf_dynamo_L1"]
        make_case(
            "hf",
            lambda p: hf_generate(hf, p),
            hf_exports,
            full_forward=lambda s: hf(input_ids=s, use_cache=False).logits,
        )
    if want("minimal"):
        minimal = em.build_minimal()
        make_case(
            "minimal",
            lambda p: full_recompute_generate(minimal, p),
            ["minimal_ts_L12", "minimal_ts_L7", "minimal_dynamo_L12"],
        )
    if want("hf3c3"):
        hf3 = build_hf3c3()
        export_hf3c3(hf3)
        make_case(
            "hf3c3",
            lambda p: hf_generate(hf3, p),
            ["hf_ts_3l_conv3_L8"],
            full_forward=lambda s: hf3(input_ids=s, use_cache=False).logits,
        )
    if want("hf2"):
        # The weights of the Mamba2 exports (same builder, same seed).
        hf2 = em2.build_hf().inner
        assert hf2.config.time_step_limit == (0.0, float("inf")), hf2.config.time_step_limit
        make_case(
            "hf2",
            lambda p: hf_generate(hf2, p),
            ["hf2_dynamo_dynseq_L12", "hf2_dynamo_dynbs_b2_L12"],
            full_forward=lambda s: hf2(input_ids=s, use_cache=False).logits,
            vocab=em2.VOCAB,
        )
    if not want("text"):
        return

    tok = make_tokenizer()
    text = "the cat sit on the red road"
    ids = np.array([tok.encode(text).ids], dtype=np.int64)
    tokens, logits = hf_generate(hf, ids)
    case = {
        "text": text,
        "ids": ids[0].tolist(),
        "tokens": tokens[0].tolist(),
        "decoded": tok.decode(tokens[0].tolist()),
        "min_top1_top2_margin": margin(logits[:1, :24]),
        "checked_tokens": 24,
    }
    with open(os.path.join(OUT, "text_case.json"), "w") as f:
        json.dump(case, f, indent=1)
    print(f"text case: margin over 24 tokens {case['min_top1_top2_margin']:.3e}", file=sys.stderr)


if __name__ == "__main__":
    main()
