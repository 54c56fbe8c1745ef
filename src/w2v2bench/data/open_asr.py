"""The Open ASR Leaderboard's English test sets (`data=open_asr data.set=<set>`): `data=hf` with the set's
config and split chosen by its name, and the leaderboard's rule for which rows count.

The sets, configs and splits (`data.sets` in conf/data/open_asr.yaml) are those of the leaderboard's own runs
(its `transformers/run_wav2vec2.sh`, read at commit d1e99b2 of github.com/huggingface/open_asr_leaderboard): the
dataset `hf-audio/open-asr-leaderboard`, every set's `audio` and `text` columns. Its `prepare_data` leaves out a
row whose text its English normaliser makes empty (or "ignore time segment in scoring"): `data.drop_unscored`
does the same with the normaliser named there (`whisper`, the one it is based on), so both scorings of a run (the
harness's, the leaderboard's: docs/data.md) are over the same utterances. `data.dataset` may be a copy of the
repo's files (`<config>/<split>-*.parquet` or `<config>/<split>/*.parquet`), read offline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .hf import HFSettings, HFSource

# set -> [config, split] on hf-audio/open-asr-leaderboard, as the leaderboard's own runs name them: the table
# conf/data/open_asr.yaml shows as data.sets (a run whose data.sets is another is refused: it would relabel a set)
SETS: dict[str, list[str]] = {
    "ami": ["ami_cleaned", "test"],
    "earnings22": ["earnings22", "test"],
    "gigaspeech": ["gigaspeech_cleaned", "test"],
    "librispeech-clean": ["librispeech", "test.clean"],
    "librispeech-other": ["librispeech", "test.other"],
    "spgispeech": ["spgispeech", "test"],
    "voxpopuli": ["voxpopuli_cleaned_aa", "test"],
}


@dataclass(frozen=True)
class OpenASRSettings(HFSettings):
    set: str = "librispeech-clean"  # one of SETS; it chooses data.config and data.split
    sets: Mapping[str, Sequence[str]] = field(default_factory=dict)  # SETS, as the config shows it

    def __post_init__(self):
        if {k: list(v) for k, v in dict(self.sets).items()} != SETS:
            raise ConfigError(
                "data.sets is the Open ASR Leaderboard's own table (conf/data/open_asr.yaml) and cannot be changed: "
                "another set is data=hf with data.dataset, data.config and data.split"
            )
        if self.set not in SETS:
            raise ConfigError(f"data.set={self.set!r}: the Open ASR Leaderboard's English sets are {sorted(SETS)}")
        config, split = SETS[self.set]
        for key, value, chosen in (("config", self.config, config), ("split", self.split, split)):
            if value != chosen:
                raise ConfigError(
                    f"data.{key}={value!r}: data=open_asr chooses it by data.set ({self.set}: {chosen!r}); "
                    f"for another dataset use data=hf"
                )
        super().__post_init__()


class OpenASRSource(HFSource):
    """`data=open_asr`: one of the Open ASR Leaderboard's English test sets (`data.set`)."""

    name = "open_asr"
    Settings = OpenASRSettings
    # its references are cased and punctuated: scored as written (normalizer=null) every word is an error
    normalizer_hint = "whisper (the leaderboard's own is based on it)"

    @classmethod
    def create(cls, settings: OpenASRSettings) -> OpenASRSource:
        return cls(settings)
