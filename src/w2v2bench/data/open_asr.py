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


@dataclass(frozen=True)
class OpenASRSettings(HFSettings):
    set: str = "librispeech-clean"  # one of `sets`; it chooses data.config and data.split
    # set -> [config, split] on hf-audio/open-asr-leaderboard, as the leaderboard runs them (conf/data/open_asr.yaml)
    sets: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self):
        if self.set not in self.sets:
            raise ConfigError(f"data.set={self.set!r}: the Open ASR Leaderboard's English sets are {sorted(self.sets)}")
        config, split = self.sets[self.set]
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

    @classmethod
    def create(cls, settings: OpenASRSettings) -> OpenASRSource:
        return cls(settings)
