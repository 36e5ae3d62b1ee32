"""runners.train and its data stream: the batches, the loss wiring, saving, and resuming to identical parameters."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import runners.train as train
from model_adapters.checkpoint import load, model_fingerprint
from model_adapters.tokenizers import ByteTokenizer
from common.errors import UserError
from common.files import read_jsonl
from ruler_tasks.registry import load_registry
from runners.prepare import prepare_data
from runners.train_data import TrainingStream, answer_text

CONTEXT = 1024
STEPS = 60
RECIPE = ["--preset", "tiny-rattention", "--context", str(CONTEXT), "--batch-tokens", "2048", "--warmup", "2", "--lr", "1e-2"]


@pytest.fixture(scope="module")
def stream() -> TrainingStream:
    return make_stream(seed=3)


def make_stream(seed: int) -> TrainingStream:
    return TrainingStream(ByteTokenizer(), context=CONTEXT, steps=STEPS, seed=seed, bos_id=256, eos_id=257,
                          batch_tokens=2048, text_fraction=0.2)


def test_batches_depend_only_on_seed_and_step(stream):
    a, b, c = stream.batch(5), stream.batch(5), stream.batch(6)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.names == b.names and (a.tokens.shape != c.tokens.shape or not np.array_equal(a.tokens, c.tokens))
    other = make_stream(seed=4).batch(5)
    assert other.tokens.shape != a.tokens.shape or not np.array_equal(other.tokens, a.tokens)


def test_curriculum_starts_short_and_ends_at_the_full_context(stream):
    # 3/8 of the context (384 bytes) holds no task's sample, so the byte-level demos' curriculum starts at 512
    assert stream.buckets == [512, 768, 1024]
    shapes = [stream.batch(step).tokens.shape for step in range(STEPS)]
    assert all(rows * length <= 2048 and rows == 2048 // length for rows, length in shapes)
    assert {length for _, length in shapes[:5]} == {stream.buckets[0]} and stream.buckets[0] < CONTEXT
    lengths = [length for _, length in shapes]
    late = lengths[int(0.4 * STEPS):]
    assert set(late) == set(stream.buckets) and late.count(CONTEXT) > len(late) / 2


def test_rows_cover_the_non_qa_tasks_text_and_copies_with_correct_masks(stream):
    tok = ByteTokenizer()
    seen = set()
    for step in range(STEPS):
        batch = stream.batch(step)
        assert batch.tokens.dtype == np.int32 and batch.answer_mask.shape == (batch.tokens.shape[0], batch.tokens.shape[1] - 1)
        for row, name in enumerate(batch.names):
            seen.add(name)
            ids, answer, copy, text = batch.tokens[row], batch.answer_mask[row], batch.copy_mask[row], batch.text_mask[row]
            assert ids[0] == 256 and not np.any(answer & text) and not np.any(copy & text) and not np.any(answer & copy)
            targets = ids[1:]
            if name == "text":
                assert not answer.any() and not copy.any() and text.all()
                continue
            if name == "copy":
                assert not answer.any() and np.all(copy | text)  # every target is scored, once
                starts = np.flatnonzero(np.diff(copy.astype(int)) == 1) + 1  # copy runs begin after text
                assert len(starts) == 4 and not copy[: ids.shape[0] // 2].any()
                first_half = tok.decode(ids[1 : ids.shape[0] // 2 + 1])
                for start in starts:
                    end = start + int(np.argmin(copy[start:])) if not copy[start:].all() else len(copy)
                    assert end - start >= 14 and tok.decode(targets[start - 2 : end]) in first_half  # repeats the first half
                continue
            assert not copy.any()
            answer_ids = targets[answer]
            assert answer_ids[-1] == 257  # the answer ends with EOS
            first_answer = int(np.argmax(answer))
            assert text[:first_answer].all() and not text[first_answer:].any()  # text = the prompt, pads unscored
            prompt, answer_str = tok.decode(ids[1 : first_answer + 1]), tok.decode(answer_ids[:-1])
            references = answer_str.lstrip().split(", ")
            assert answer_text(prompt, references) == answer_str  # one space after the prefix, unless it ends in one
            assert all(r in prompt for r in references)  # every reference occurs in the context
    non_qa = {n for n in load_registry().names() if not load_registry().get(n).needs_data}
    assert seen == non_qa | {"text", "copy"}


def recall_pairs(text: str) -> dict[str, str]:
    """The key -> value pairs a recall row stores, in either of its two formats."""
    compact = dict(re.findall(r"(?:^|(?<=;))([^?:;]+):([0-9]+);", text))
    needles = dict(re.findall(r"special magic \w+ for ([^\n]+?) is: (\S+)\.", text))  # keys may hold a space
    return {**compact, **needles}


def checked_recall_pairs(tok, ids, recall, text, min_queries=1) -> tuple[dict[str, str], str]:
    """(the pairs a recall row stores, its format) after checking that the row scores exactly the recalled
    values: every scored run is the value stored for the key queried just before it, all else is text."""
    assert ids[0] == 256 and not np.any(recall & text) and recall.any()
    used = int(np.flatnonzero(ids != 257)[-1]) + 1  # eos pads the row after its last query
    assert np.all((recall | text)[: used - 1]) and not text[used - 1 :].any()
    body = tok.decode(ids[1:used])
    pairs = recall_pairs(body)
    runs = np.flatnonzero(np.diff(np.concatenate([[0], recall.astype(int), [0]])))
    assert len(runs) // 2 >= min_queries
    for start, end in zip(runs[::2], runs[1::2]):
        before = tok.decode(ids[1 : start + 1])
        key = re.search(r"(?:\?([^?:;]+):|for ([^\n?]+?) mentioned in the provided text is )$", before)
        key = key.group(1) or key.group(2)
        assert tok.decode(ids[start + 1 : end + 1]) == pairs[key]
    return pairs, ("needle" if "special magic" in body else "compact")


def test_answer_order_document_lists_each_keys_values_as_the_prompt_does():
    tok = ByteTokenizer()
    common = dict(context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048)

    def niah_answers(answer_order):
        """{(step, row): (prompt, answer values)} of the multi-value and multi-query NIAH rows."""
        stream = TrainingStream(tok, **common, answer_order=answer_order)
        rows = {}
        for step in range(STEPS):
            b = stream.batch(step)
            for row, name in enumerate(b.names):
                if name in ("niah_multivalue", "niah_multiquery"):
                    first = int(np.argmax(b.answer_mask[row]))
                    answer = tok.decode(b.tokens[row][1:][b.answer_mask[row]][:-1])
                    rows[step, row] = (name, tok.decode(b.tokens[row][1 : first + 1]), answer.lstrip().split(", "))
        return rows

    reference, document = niah_answers("reference"), niah_answers("document")
    assert reference.keys() == document.keys() and len(reference) >= 4  # the same rows, only answers reordered
    shuffled = 0
    for key, (name, prompt, values) in document.items():
        ref_name, ref_prompt, ref_values = reference[key]
        assert (name, prompt, sorted(values)) == (ref_name, ref_prompt, sorted(ref_values))
        if name == "niah_multivalue":
            assert values == sorted(values, key=prompt.find)  # the needles' order in the prompt
            shuffled += values != ref_values
        else:
            assert values == ref_values  # one value per key, in the question's order
    assert shuffled  # RULER's order is the draw's, not the prompt's
    with pytest.raises(UserError, match="--answer-order"):
        TrainingStream(tok, **common, answer_order="sorted")


def test_recall_phase_rows_are_easy_recall_and_repeats_scored_exactly():
    tok = ByteTokenizer()
    stream = TrainingStream(tok, context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048,
                            recall_steps=10, recall_length=256, recall_fraction=0.5)
    kinds = []
    for step in (0, 5, 9):
        batch = stream.batch(step)
        assert batch.tokens.shape == (8, 256) and set(batch.names) <= {"recall", "repeat"}
        assert not batch.answer_mask.any()
        kinds += batch.names
        for row in range(8):
            ids, recall, text, copy = batch.tokens[row], batch.recall_mask[row], batch.text_mask[row], batch.copy_mask[row]
            if batch.names[row] == "repeat":
                first, second = tok.decode(ids[1:]).split("|")
                assert re.fullmatch(r"[a-z0-9]+", first) and len(first) == (256 - 2) // 2 and len(second) == 256 - 2 - len(first)
                assert not copy[: len(first) + 1].any() and not recall.any() and not np.any(copy & text)
                runs = np.flatnonzero(np.diff(np.concatenate([[0], copy.astype(int), [0]])))
                assert len(runs) // 2 >= 6  # spans of 8-16 tokens fill the second half
                for start, end in zip(runs[::2], runs[1::2]):  # scored tokens start + 1 .. end, after two unscored
                    assert tok.decode(ids[start - 1 : end + 1]) in first
                continue
            assert not copy.any()
            pairs, form = checked_recall_pairs(tok, ids, recall, text, min_queries=4)
            assert form == "compact"  # the easy form: 4-letter keys, 4-digit values
            assert all(re.fullmatch(r"[a-z]{4}", k) and re.fullmatch(r"[0-9]{4}", v) for k, v in pairs.items())
    assert 0.25 < kinds.count("repeat") / len(kinds) < 0.75

    late = [stream.batch(step) for step in range(10, STEPS)]
    names = [n for b in late for n in b.names]
    assert 0.3 < names.count("recall") / len(names) < 0.7 and "repeat" not in names
    forms, keys, values = set(), set(), set()
    for b in late:
        for row in np.flatnonzero(np.array(b.names) == "recall"):
            pairs, form = checked_recall_pairs(tok, b.tokens[row], b.recall_mask[row], b.text_mask[row])
            forms.add((form, b.tokens.shape[1] >= 512))
            keys |= {"words" if "-" in k else "letters" for k in pairs}
            values |= {"uuid" if "-" in v else len(v) for v in pairs.values()}
    assert {("compact", True), ("needle", True)} <= forms and ("needle", False) not in forms  # needles need 512+ tokens
    assert keys == {"words", "letters"} and values == {4, 7, "uuid"}


def test_recall_phase_forms_all_puts_every_compact_form_in_the_recall_phase():
    tok = ByteTokenizer()
    stream = TrainingStream(tok, context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048,
                            recall_steps=10, recall_length=256, recall_fraction=0.5, recall_phase_forms="all")
    keys, values = set(), set()
    for step in range(10):
        batch = stream.batch(step)
        assert batch.tokens.shape == (8, 256) and set(batch.names) <= {"recall", "repeat"}
        for row in np.flatnonzero(np.array(batch.names) == "recall"):
            pairs, form = checked_recall_pairs(tok, batch.tokens[row], batch.recall_mask[row], batch.text_mask[row])
            assert form == "compact"  # needle sentences need 512+ tokens
            keys |= {"words" if "-" in k else len(k) for k in pairs}
            values |= {len(v) for v in pairs.values()}
    assert keys == {"words", 2, 3, 4} and values == {4, 7}
    with pytest.raises(UserError, match="--recall-phase-forms"):
        TrainingStream(tok, context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, recall_phase_forms="hard")


def test_recall_length_end_ramps_the_recall_phase_over_its_second_half():
    tok = ByteTokenizer()
    common = dict(context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048, recall_steps=40,
                  recall_length=128, recall_fraction=0.5)
    flat = TrainingStream(tok, **common)
    ramp = TrainingStream(tok, **common, recall_length_end=512)
    rng = np.random.default_rng(0)
    assert {flat.length_at(step, rng) for step in range(40)} == {128}
    lengths = [ramp.length_at(step, rng) for step in range(40)]
    assert lengths[:21] == [128] * 21  # the first half, and the ramp's first step, stay at recall_length
    assert lengths == sorted(lengths) and all(n % 64 == 0 for n in lengths)
    assert lengths[-1] == 512 and {192, 256, 320, 384, 448} <= set(lengths)
    assert ramp.length_at(40, rng) in ramp.buckets  # the task mixture's buckets after the phase
    batch = ramp.batch(39)
    assert batch.tokens.shape == (2048 // 512, 512) and set(batch.names) <= {"recall", "repeat"}
    for bad in (64, CONTEXT + 64):
        with pytest.raises(UserError, match="--recall-length-end"):
            TrainingStream(tok, **common, recall_length_end=bad)


def test_training_rows_are_not_evaluation_samples(stream, tmp_path):
    """Same task, length and the evaluation's default seed: the generated needles never coincide."""
    prepare_data(tasks="niah_single_1", lengths=[CONTEXT], samples=20, tokenizer=ByteTokenizer(), tokenizer_spec="byte",
                 seed=42, out=tmp_path, progress=False)
    eval_answers = {r["outputs"][0] for r in read_jsonl(tmp_path / "data" / "niah_single_1" / f"{CONTEXT}.jsonl")}
    tok = ByteTokenizer()
    train_answers = set()
    for step in range(STEPS):
        batch = stream.batch(step)
        for row, name in enumerate(batch.names):
            if name == "niah_single_1":
                train_answers.add(tok.decode(batch.tokens[row, 1:][batch.answer_mask[row]][:-1]).strip())
    assert train_answers and not train_answers & eval_answers


def test_too_short_a_context_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train.main(["--preset", "tiny-rattention", "--out", str(tmp_path / "m"), "--steps", "2", "--warmup", "1", "--context", "300"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--context" in err
    assert not (tmp_path / "m").exists()


def _params(ckpt: Path) -> list[np.ndarray]:
    from flax import nnx

    model, _ = load(ckpt)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def test_loss_falls_and_the_checkpoint_loads(tmp_path):
    out = tmp_path / "m"
    assert train.main([*RECIPE, "--out", str(out), "--steps", "30", "--log-every", "5"]) == 0
    log = read_jsonl(out / "train_log.jsonl")
    assert [r["step"] for r in log] == [5, 10, 15, 20, 25, 30]
    for term in ("answer_loss", "copy_loss", "text_loss"):
        assert log[-1][term] < log[0][term] - 0.5, term
    summary = json.loads((out / "training.json").read_text())
    assert summary["steps"] == 30 and summary["final"]["loss"] == pytest.approx(log[-1]["loss"])
    assert summary["recipe"]["context"] == CONTEXT and summary["command"].startswith("python -m runners.train")
    assert all(0 <= log[-1][f"{term}_acc"] <= 1 for term in train.LOSS_TERMS)
    assert log[-1]["text_acc"] > log[0]["text_acc"]  # argmax accuracy is logged beside each loss
    model, tokenizer = load(out)
    assert model.config.train_context == 256 and tokenizer.vocab_size == 258
    assert train.main([*RECIPE, "--out", str(out), "--steps", "30"]) == 0  # already done: nothing changes
    assert read_jsonl(out / "train_log.jsonl") == log


def test_recall_first_acc_scores_only_each_recalled_values_first_token():
    from flax import nnx
    from model_adapters.model import RAttentionLM
    from model_adapters.presets import preset_config

    model = RAttentionLM(preset_config("tiny-full"), rngs=nnx.Rngs(0))
    recall = np.zeros((1, 15), bool)
    recall[0, [2, 3, 4, 8, 11, 12]] = True  # three values: columns 2-4, 8, 11-12
    first = np.asarray(train.first_of_runs(jnp.asarray(recall)))
    assert np.flatnonzero(first[0]).tolist() == [2, 8, 11]
    # tokens chosen left to right: the model's argmax at each first token, anything else at the other targets
    tokens = np.zeros((1, 16), np.int32)
    for t in range(15):
        guess = int(jnp.argmax(model(jnp.asarray(tokens[:, : t + 1]), impl="xla")[0, t]))
        tokens[0, t + 1] = guess if first[0, t] else (guess + 1) % 258
    none = np.zeros_like(recall)
    _, terms = train.loss_terms(model, jnp.asarray(tokens), (none, none, jnp.asarray(recall), none))
    assert float(terms["recall_first_acc"]) == 1.0
    assert float(terms["recall_acc"]) == pytest.approx(3 / 6)

    masks = (none, none, jnp.asarray(recall), none)
    ce = -jax.nn.log_softmax(model(jnp.asarray(tokens[:, :-1]), impl="xla"))[0, np.arange(15), tokens[0, 1:]]
    _, first_terms = train.loss_terms(model, jnp.asarray(tokens), masks, recall_loss="first")
    assert float(terms["recall_loss"]) == pytest.approx(float(ce[recall[0]].mean()), rel=1e-5)
    assert float(first_terms["recall_loss"]) == pytest.approx(float(ce[first[0]].mean()), rel=1e-5)
    assert first_terms["recall_acc"] == terms["recall_acc"] and first_terms["recall_first_acc"] == 1.0
    _, both_terms = train.loss_terms(model, jnp.asarray(tokens), masks, recall_loss="first+all")
    assert float(both_terms["recall_loss"]) == pytest.approx(float(ce[first[0]].mean() + ce[recall[0]].mean()), rel=1e-5)


def test_interrupted_run_resumes_to_identical_parameters(tmp_path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = [*RECIPE, "--steps", "6", "--save-every", "2", "--log-every", "1"]
    assert train.main([*args, "--out", str(straight)]) == 0

    real = train.make_train_step

    def interrupted_after_three(*args):
        step, calls = real(*args), []

        def wrapped(*a):
            calls.append(1)
            if len(calls) > 3:
                raise KeyboardInterrupt
            return step(*a)

        return wrapped

    monkeypatch.setattr(train, "make_train_step", interrupted_after_three)
    with pytest.raises(SystemExit) as e:
        train.main([*args, "--out", str(resumed)])
    assert e.value.code == 130
    assert [r["step"] for r in read_jsonl(resumed / "train_log.jsonl")] == [1, 2, 3]  # saved at 2, logged 3
    monkeypatch.setattr(train, "make_train_step", real)
    assert train.main([*args, "--out", str(resumed)]) == 0
    for a, b in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(a, b)
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_jsonl(straight / "train_log.jsonl")]
    assert [{k: v for k, v in r.items() if k != "elapsed_s"} for r in read_jsonl(resumed / "train_log.jsonl")] == strip


def test_until_stops_inside_the_schedule_and_a_larger_until_continues_it_exactly(tmp_path):
    straight, budgeted = tmp_path / "straight", tmp_path / "budgeted"
    args = [*RECIPE, "--steps", "6", "--save-every", "2", "--log-every", "1"]
    assert train.main([*args, "--out", str(straight)]) == 0
    assert train.main([*args, "--until", "3", "--out", str(budgeted)]) == 0
    partial = json.loads((budgeted / "training.json").read_text())
    assert partial["steps"] == 3 and partial["schedule_steps"] == 6
    assert [r["step"] for r in read_jsonl(budgeted / "train_log.jsonl")] == [1, 2, 3]
    assert train.main([*args, "--until", "6", "--out", str(budgeted)]) == 0
    for a, b in zip(_params(straight), _params(budgeted)):
        np.testing.assert_array_equal(a, b)
    assert json.loads((budgeted / "training.json").read_text())["steps"] == 6
    with pytest.raises(SystemExit) as e:  # already past the budget asked for
        train.main([*args, "--until", "4", "--out", str(budgeted)])
    assert e.value.code == 2


def test_a_different_recipe_in_the_same_out_is_refused(tmp_path, capsys):
    out = tmp_path / "m"
    assert train.main([*RECIPE, "--out", str(out), "--steps", "3", "--log-every", "1"]) == 0
    before = read_jsonl(out / "train_log.jsonl")
    capsys.readouterr()  # the first run's progress bar
    with pytest.raises(SystemExit) as e:
        train.main([*RECIPE, "--out", str(out), "--steps", "3", "--lr", "5e-3"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "different recipe" in err and "lr" in err
    assert read_jsonl(out / "train_log.jsonl") == before


def test_a_saved_state_of_another_layout_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    out = tmp_path / "m"
    args = [*RECIPE, "--out", str(out), "--steps", "4", "--log-every", "1"]
    assert train.main([*args, "--until", "2"]) == 0
    before = read_jsonl(out / "train_log.jsonl")
    capsys.readouterr()
    real = train.optimizer  # the same recipe, but an optimizer whose state has another structure
    monkeypatch.setattr(train, "optimizer", lambda recipe, params: optax.chain(optax.scale_by_adam(), real(recipe, params)))
    with pytest.raises(SystemExit) as e:
        train.main(args)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "train_state" in err and "new --out" in err
    assert read_jsonl(out / "train_log.jsonl") == before


def test_rla_init_scale_sets_only_rattention_layers_rla_norms(tmp_path):
    def norms(preset, scale):
        out = tmp_path / f"{preset}-{scale}"
        recipe, _ = train.parse_args(["--preset", preset, "--context", str(CONTEXT), "--out", str(out), "--steps", "2",
                                      "--warmup", "1", "--rla-init-scale", str(scale)])
        trainer = train.Trainer(recipe, out)
        return {"/".join(map(str, path)): float(np.abs(leaf).max()) for path, leaf in
                jax.tree_util.tree_flatten_with_path(trainer.params)[0]
                if any(getattr(p, "key", None) in ("swa_norm", "rla_norm") for p in path)}

    zero = norms("tiny-rattention", 0.0)
    assert zero and all((v == 0.0) == ("rla_norm" in k) for k, v in zero.items())  # swa_norm stays 1
    assert set(norms("tiny-rattention", 0.5).values()) == {0.5, 1.0}
    assert norms("tiny-swa", 0.0) == {}  # no RAttention layer, nothing to set


def test_a_recipe_saved_before_a_field_existed_resumes_with_its_default(tmp_path):
    out = tmp_path / "m"
    args = [*RECIPE, "--out", str(out), "--steps", "4", "--save-every", "2", "--log-every", "1"]
    assert train.main([*args, "--until", "2"]) == 0
    saved = json.loads((out / "recipe.json").read_text())
    assert saved.pop("rla_init_scale") == 1.0
    (out / "recipe.json").write_text(json.dumps(saved))  # as an older version wrote it
    assert train.main(args) == 0
    assert json.loads((out / "training.json").read_text())["steps"] == 4


def test_rla_hold_steps_keeps_rla_norms_at_their_initial_scale_then_releases_them(tmp_path):
    def flat(params):
        return {"/".join(map(str, path)): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}

    def leaves(out):
        return flat(nnx.to_pure_dict(nnx.state(load(out)[0])))

    out = tmp_path / "held"
    args = [*RECIPE, "--out", str(out), "--steps", "6", "--log-every", "1", "--rla-init-scale", "0", "--rla-hold-steps", "3"]
    start = flat(train.Trainer(train.parse_args(args)[0], out).params)
    assert train.main([*args, "--until", "3"]) == 0
    held = leaves(out)
    rla = [k for k in held if "rla_norm" in k]
    assert rla and all(np.all(held[k] == 0) for k in rla)
    assert all(not np.array_equal(held[k], start[k]) for k in held if "swa_norm" in k)  # the rest trains
    assert train.main(args) == 0
    released = leaves(out)
    assert all(np.any(released[k] != 0) for k in rla)
    with pytest.raises(UserError, match="--rla-hold-steps"):
        train.parse_args([*args, "--rla-hold-steps", "7"])


def test_rla_hold_steps_changes_nothing_for_a_model_without_rattention_layers(tmp_path):
    def state(*extra):
        args = [*RECIPE, "--out", str(tmp_path), "--steps", "6", *extra]
        recipe, _ = train.parse_args([*args, "--preset", "tiny-swa"])  # the last --preset wins
        params = train.Trainer(recipe, tmp_path).params
        return jax.tree_util.tree_structure(train.optimizer(recipe, params).init(params))

    assert state("--rla-hold-steps", "3") == state()  # so a checkpoint trained without the flag resumes with it


def test_recall_needle_uuid_and_short_question_shares_shape_the_recall_rows():
    tok = ByteTokenizer()
    common = dict(context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048, recall_fraction=0.7)

    def recall_rows(**options):
        """(form, length, questions asked, full RULER questions among them, UUID values) of each recall row after
        the curriculum."""
        stream = TrainingStream(tok, **common, **options)
        rows = []
        for step in range(30, STEPS):
            b = stream.batch(step)
            for row in np.flatnonzero(np.array(b.names) == "recall"):
                pairs, form = checked_recall_pairs(tok, b.tokens[row], b.recall_mask[row], b.text_mask[row])
                body = tok.decode(b.tokens[row][1:])
                uuids = {bool(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", v)) for v in pairs.values()}
                assert len(uuids) == 1  # a row's values are all of one kind
                rows.append((form, b.tokens.shape[1], body.count(" mentioned in the provided text is "),
                             body.count("What is the special magic"), uuids.pop()))
        return rows

    default = recall_rows()
    assert {form for form, *_ in default} == {"compact", "needle"}
    assert all(full == asked for form, _, asked, full, _ in default if form == "needle")  # each a question + answer prefix
    assert not any(uuid for form, *_, uuid in default if form == "compact")
    everything = recall_rows(recall_needle_share=1.0)
    assert all((form == "needle") == (length >= 512) for form, length, *_ in everything)
    assert 0.05 < np.mean([uuid for form, *_, uuid in everything if form == "needle"]) < 0.4  # the default 0.2
    assert all(uuid for form, *_, uuid in recall_rows(recall_needle_share=1.0, recall_uuid_share=1.0) if form == "needle")
    assert not any(uuid for *_, uuid in recall_rows(recall_needle_share=1.0, recall_uuid_share=0.0))
    assert {form for form, *_ in recall_rows(recall_needle_share=0.0)} == {"compact"}
    short = recall_rows(recall_needle_share=1.0, recall_short_questions=1.0)
    assert all(full == 0 for form, _, _, full, _ in short if form == "needle")  # the answer prefix alone

    def asked_at_full_length(rows):
        return np.mean([asked for form, length, asked, *_ in rows if form == "needle" and length == CONTEXT])

    assert asked_at_full_length(short) > 1.5 * asked_at_full_length(everything)  # more keys asked per row
    mixed = recall_rows(recall_needle_share=1.0, recall_short_questions=0.5)
    full_questions = sum(full for form, _, _, full, _ in mixed if form == "needle")
    asked = sum(a for form, _, a, *_ in mixed if form == "needle")
    assert 0.25 < full_questions / asked < 0.75
    for name in ("recall_needle_share", "recall_short_questions", "recall_uuid_share"):
        with pytest.raises(UserError, match="--" + name.replace("_", "-")):
            TrainingStream(tok, **common, **{name: 1.5})


def test_recall_multivalue_rows_ask_each_keys_values_in_the_order_they_stand():
    tok = ByteTokenizer()
    common = dict(context=CONTEXT, steps=STEPS, seed=3, bos_id=256, eos_id=257, batch_tokens=2048, recall_fraction=0.7,
                  recall_needle_share=1.0)

    def needle_rows(share):
        """(body, scored runs' text) of each needle-layout recall row of 1,024 tokens after the curriculum."""
        stream = TrainingStream(tok, **common, recall_multivalue_share=share)
        rows = []
        for step in range(30, STEPS):
            b = stream.batch(step)
            for row in np.flatnonzero(np.array(b.names) == "recall"):
                ids, recall = b.tokens[row], b.recall_mask[row]
                body = tok.decode(ids[1:])
                if "special magic" in body and b.tokens.shape[1] >= 1024:
                    runs = np.flatnonzero(np.diff(np.concatenate([[0], recall.astype(int), [0]])))
                    rows.append((body, [tok.decode(ids[a + 1 : e + 1]) for a, e in zip(runs[::2], runs[1::2])]))
        return rows

    multi = needle_rows(1.0)
    assert len(multi) >= 5
    for body, scored in multi:
        needles = re.findall(r"special magic \w+ for ([^\n]+?) is: (\S+)\.", body)  # in the order they stand
        answers = re.findall(r"for ([^\n?]+?) mentioned in the provided text are ([^\n]+)\.\n", body)
        assert answers and "mentioned in the provided text is " not in body
        expected = []
        for key, listed in answers:
            values = [v for k, v in needles if k == key]
            assert 2 <= len(values) <= 4 and listed.split(", ") == values
            expected += values
        assert scored == expected  # every value scored, the separators not
        assert body.count("What are all the special magic") <= len(answers)
    singular = needle_rows(0.0)
    assert all("provided text are " not in body for body, _ in singular)
    mixed = needle_rows(0.5)
    assert {"provided text are " in body for body, _ in mixed} == {True, False}
    with pytest.raises(UserError, match="--recall-multivalue-share"):
        TrainingStream(tok, **common, recall_multivalue_share=-0.1)


def test_init_from_starts_from_the_checkpoint_and_records_it(tmp_path, capsys):
    source = tmp_path / "stage1"
    assert train.main([*RECIPE, "--out", str(source), "--steps", "2", "--warmup", "1", "--log-every", "1"]) == 0
    args = [*RECIPE, "--out", str(tmp_path / "stage2"), "--steps", "2", "--warmup", "1", "--log-every", "1",
            "--init-from", str(source)]
    recipe, _ = train.parse_args(args)
    start = train.Trainer(recipe, tmp_path / "stage2").params
    trained = nnx.to_pure_dict(nnx.state(load(source)[0]))
    assert jax.tree.all(jax.tree.map(np.array_equal, start, trained))
    fresh = train.Trainer(train.parse_args(args[:-2])[0], tmp_path / "fresh").params
    assert not jax.tree.all(jax.tree.map(np.array_equal, start, fresh))
    assert train.main(args) == 0
    summary = json.loads((tmp_path / "stage2" / "training.json").read_text())
    assert summary["recipe"]["init_from"] == str(source)
    assert summary["init_from"]["fingerprint"] == model_fingerprint(source)
    assert summary["init_from"]["training"] == json.loads((source / "training.json").read_text())

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        train.main([*args, "--preset", "tiny-swa"])  # the source is a tiny-rattention checkpoint
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "not a tiny-swa model" in err, err
