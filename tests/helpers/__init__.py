"""What more than one test module uses: paths to the shipped data, the architectures, and the helper modules here."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
LIBRISPEECH = DATA / "LibriSpeech"

# every architecture of the family this harness makes exact, as (model_type, feature encoder norm)
ARCHITECTURES = [
    ("wav2vec2", "group"),
    ("wav2vec2", "layer"),
    ("hubert", "group"),
    ("hubert", "layer"),
    ("data2vec-audio", "layer"),
]


def official_ids(split: str) -> list[str]:
    """The official utterance ids of a LibriSpeech split (test-clean ...), sorted (tests/data/librispeech-ids/)."""
    return (DATA / "librispeech-ids" / f"{split}.txt").read_text().split()


# the tests' own config folder (tests/conf: the toys' YAMLs) on Hydra's search path
TESTS_CONF = f"hydra.searchpath=[file://{DATA.parent / 'conf'}]"
