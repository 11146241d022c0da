"""A tiny GPT-2 causal language model built locally (no hub): for tests and CPU-sized recipe searches.

``build_tiny_causal_lm`` trains a byte-level BPE tokenizer on the given texts and
saves it with a randomly initialised (seeded) GPT-2 into one directory that
``AutoTokenizer.from_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` load.
Same arguments -> byte-identical files.

DJ-Sandbox has no such helper: its model hooks always start from a hub model.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["build_tiny_causal_lm", "train_tokenizer", "tiny_gpt2", "warm_up", "SPECIAL_TOKEN", "MIN_VOCAB_SIZE"]

# GPT-2's single special token, used as bos, eos, unk and pad alike.
SPECIAL_TOKEN = "<|endoftext|>"
MIN_VOCAB_SIZE = 257  # the byte alphabet is always kept, plus SPECIAL_TOKEN


def train_tokenizer(texts: Iterable[str], vocab_size: int, model_max_length: int) -> Any:
    """A byte-level BPE tokenizer trained on texts, wrapped for transformers (a PreTrainedTokenizerFast)."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size must be at least {MIN_VOCAB_SIZE} (256 byte symbols + {SPECIAL_TOKEN}), got {vocab_size}"
        )
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[SPECIAL_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte stays encodable
        show_progress=False,
    )
    # A list, not an iterator: the trainer's result must not depend on how the iterable is consumed.
    backend.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        model_max_length=model_max_length,
        **dict.fromkeys(("bos_token", "eos_token", "unk_token", "pad_token"), SPECIAL_TOKEN),
    )


def tiny_gpt2(
    vocab_size: int, *, n_layer: int, n_embd: int, n_head: int, n_positions: int, seed: int, eos_token_id: int
) -> Any:
    """A randomly initialised GPT2LMHeadModel; the weights depend on the seed only."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        **dict.fromkeys(("bos_token_id", "eos_token_id", "pad_token_id"), eos_token_id),
    )
    # A local generator state: seeding must not leak into (or depend on) the caller's global RNG use.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model


def build_tiny_causal_lm(
    out_dir: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 2,
    n_positions: int = 128,
    seed: int = 42,
) -> Path:
    """Train a tokenizer on texts, build a seeded GPT-2 with its vocabulary, save both into out_dir."""
    out_dir = Path(out_dir)
    tokenizer = train_tokenizer(texts, vocab_size, n_positions)
    model = tiny_gpt2(
        len(tokenizer),  # the trainer may stop below vocab_size on a small corpus
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        seed=seed,
        eos_token_id=tokenizer.eos_token_id,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def warm_up() -> None:
    """Save, load and take one training step of a tiny model once, in the warm job server.

    Measured here, the first model a process loads and trains costs ~20 s more than the next ones
    (transformers compiles hundreds of regular expressions for its checkpoint conversion tables; torch
    initialises its kernels). Jobs forked from the server afterwards start past that. One thread and no
    tokenizer training, so that no thread pool exists when the server forks.
    """
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as directory:
            tiny_gpt2(
                MIN_VOCAB_SIZE, n_layer=1, n_embd=8, n_head=1, n_positions=8, seed=0, eos_token_id=0
            ).save_pretrained(directory)
            model = AutoModelForCausalLM.from_pretrained(directory)
        ids = torch.zeros((1, 4), dtype=torch.long)
        model(input_ids=ids, labels=ids).loss.backward()
    finally:
        torch.set_num_threads(threads)
