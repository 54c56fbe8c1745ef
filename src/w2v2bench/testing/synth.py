"""Synthetic LibriSpeech-style corpus: espeak-ng speech of generated sentences in the OpenSLR layout.

Text comes from a closed vocabulary (uppercase, no homophones, with double letters and apostrophes)
arranged by small grammar templates. A sentence's subset is fixed by a hash of its text, so test
sentences never occur in training whatever the seed or sizes. Voices, speeds and noise are drawn from
a seed; espeak-ng itself is deterministic, so the same seed gives the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
ESPEAK_RATE = 22_050
SUBSETS = ("train", "test-clean", "test-other")
# A sentence belongs to the subset picked by sha1(text) % HASH_BUCKETS: bucket 0 is test-clean,
# bucket 1 test-other, the rest train. Disjoint by construction, independent of seed and sizes.
HASH_BUCKETS = 20
_BUCKET_OF_SUBSET = {"test-clean": (0,), "test-other": (1,), "train": tuple(range(2, HASH_BUCKETS))}

# ---------------------------------------------------------------------------------------------------
# Vocabulary. Homophone pairs (TO/TOO/TWO, FOR/FOUR, BY/BUY, ITS/IT'S, YOUR/YOU'RE, ...) are kept out:
# without a language model greedy CTC cannot tell them apart. test_synth checks this with espeak-ng.
# ---------------------------------------------------------------------------------------------------
NAMES = "JOHN MARY ANNA PETER EMMA JACK LUCY TOM KATE BILL SALLY HARRY MOLLY OLIVER ZOE MAX".split()
PEOPLE = (
    "TEACHER DOCTOR FARMER DRIVER BAKER SISTER BROTHER MOTHER FATHER FRIEND NEIGHBOR CHILD BABY GIRL BOY "
    "MAN WOMAN KING QUEEN SOLDIER SAILOR"
).split()
ANIMALS = "CAT DOG BIRD FISH HORSE MOUSE KITTEN PUPPY RABBIT SHEEP ZEBRA FOX DUCK GOOSE".split()
THINGS = (
    "BOOK APPLE BOTTLE CARROT BUTTER LETTER BALL BELL SHELL GLASS SPOON COOKIE PILLOW MIRROR PENNY "
    "BUTTON CAKE BREAD CUP PLATE KNIFE FORK BOX BASKET BLANKET JACKET HAT SHOE COAT DRESS SHIRT WALLET "
    "KEY LAMP CANDLE CLOCK PHONE PICTURE PAPER PENCIL MAP STONE TICKET TOWEL SOAP BRUSH JAR QUILT PUZZLE "
    "UMBRELLA KETTLE HAMMER LADDER BUCKET RIBBON TOY DRUM GUITAR RADIO CAMERA TAXI WAGON"
).split()
FOODS = "COFFEE MILK WATER JUICE SOUP CHEESE RICE HONEY TEA SUGAR CHOCOLATE PIZZA".split()
PLACES = (
    "ROOM HOUSE KITCHEN GARDEN SCHOOL OFFICE MARKET SHOP STREET CITY VILLAGE FOREST RIVER LAKE HILL "
    "MOUNTAIN FIELD FARM BARN GARAGE BRIDGE STATION LIBRARY PARK ZOO CASTLE HOSPITAL"
).split()
SPOTS = "DOOR WALL FLOOR TABLE CHAIR BED WINDOW FENCE GATE ROOF TREE POOL BOAT TRAIN TRUCK CAR".split()
ADJECTIVES = (
    "LITTLE BIG SMALL TALL OLD NEW GOOD BAD HAPPY SILLY FUNNY PRETTY YELLOW GREEN BLACK WHITE BROWN "
    "PURPLE ORANGE WARM COLD HOT WET DRY SOFT HEAVY EMPTY FULL QUIET LOUD DIRTY CLEAN SHINY SWEET "
    "BITTER FRESH SLEEPY HUNGRY BUSY LAZY CLEVER GENTLE BRAVE DARK BRIGHT NARROW WIDE SHORT LONG "
    "CHEAP STRANGE SMOOTH FUZZY JOLLY FROZEN ODD SHABBY WOODEN WOOLLEN"
).split()
STATES = "HAPPY TIRED HUNGRY BUSY READY SORRY ANGRY SLEEPY LATE WORRIED JOLLY THIRSTY".split()
# (base, past) pairs of transitive verbs.
VERBS = [
    tuple(pair.split("/"))
    for pair in (
        "SEE/SAW FIND/FOUND TAKE/TOOK BUY/BOUGHT CARRY/CARRIED DROP/DROPPED PULL/PULLED PUSH/PUSHED "
        "OPEN/OPENED CLEAN/CLEANED FILL/FILLED PAINT/PAINTED FIX/FIXED MISS/MISSED KISS/KISSED "
        "PASS/PASSED GRAB/GRABBED STOP/STOPPED HUG/HUGGED WATCH/WATCHED LIKE/LIKED WANT/WANTED "
        "NEED/NEEDED BRING/BROUGHT KEEP/KEPT LEAVE/LEFT SHOW/SHOWED HIDE/HID WASH/WASHED CHECK/CHECKED "
        "DRAG/DRAGGED FOLLOW/FOLLOWED CALL/CALLED SMELL/SMELLED TOSS/TOSSED KICK/KICKED HOLD/HELD "
        "BORROW/BORROWED COOK/COOKED SELL/SOLD LOVE/LOVED COLLECT/COLLECTED SPILL/SPILLED"
    ).split()
]
PREPOSITIONS = "IN ON UNDER NEAR BEHIND INSIDE ACROSS OVER INTO FROM BESIDE ABOVE BELOW AROUND".split()
TIMES = (
    "YESTERDAY|TODAY|TOMORROW|AGAIN|SOON|LATER|EVERY MORNING|THIS AFTERNOON|LAST WEEK|AT NOON|"
    "ON MONDAY|ON FRIDAY|IN THE EVENING|ALL DAY|AFTER DINNER|IN SUMMER|IN WINTER|EVERY SUNDAY"
).split("|")
# THE twice: the commonest determiner is drawn twice as often.
DETERMINERS = "THE|THE|A|THIS|THAT|MY|HIS|HER|OUR|EVERY|EACH".split("|")
POSSESSIVES = "MY HIS HER OUR".split()
ADVERBS = "VERY REALLY QUITE SO STILL ALWAYS NEVER OFTEN".split()
MANNER = "QUICKLY SLOWLY CAREFULLY HAPPILY QUIETLY SUDDENLY".split()
NUMBERS = ["THREE", "FIVE", "SIX", "SEVEN", "NINE", "TEN", "ELEVEN", "TWELVE", "TWENTY", "A DOZEN"]
PLURALS = (
    "BOOKS APPLES COOKIES BOTTLES KITTENS LETTERS SHEEP BOXES PUPPIES SPOONS TICKETS CANDLES BUTTONS "
    "PENCILS STONES EGGS BALLS SHELLS GLASSES BALLOONS FLOWERS CHERRIES BERRIES"
).split()
# Subjects that agree with plain verbs (DON'T) and with -S verbs (DOESN'T, ISN'T, WASN'T).
PLURAL_SUBJECTS = "I YOU WE THEY".split()
SINGULAR_SUBJECTS = "HE SHE".split()
NEGATIVES = "DIDN'T CAN'T WON'T COULDN'T SHOULDN'T WOULDN'T".split()
I_AM = "I'M|HE'S|SHE'S|WE'RE|YOU'RE".split("|")
MODALS = "WILL CAN MUST SHOULD MIGHT".split()
FUTURE_SUBJECTS = "I'LL|WE'LL|THEY'LL|SHE'LL|HE'LL".split("|")


def _pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def _maybe(rng: np.random.Generator, p: float, text: str) -> str:
    return text if rng.random() < p else ""


def _noun(rng: np.random.Generator) -> str:
    pool = (THINGS, THINGS, FOODS, ANIMALS, PEOPLE)[int(rng.integers(5))]
    return _pick(rng, pool)


def _noun_phrase(rng: np.random.Generator) -> str:
    if rng.random() < 0.15:
        return f"{_pick(rng, NUMBERS)} {_maybe(rng, 0.4, _pick(rng, ADJECTIVES))} {_pick(rng, PLURALS)}"
    det = _pick(rng, DETERMINERS)
    noun = _noun(rng)
    adj = _maybe(rng, 0.55, _pick(rng, ADJECTIVES))
    if det == "A" and (adj or noun)[0] in "AEIOU":
        det = "THE"  # no AN in the vocabulary
    return f"{det} {adj} {noun}"


def _place_phrase(rng: np.random.Generator) -> str:
    where = _pick(rng, PLACES if rng.random() < 0.5 else SPOTS)
    return f"{_pick(rng, PREPOSITIONS)} THE {_maybe(rng, 0.3, _pick(rng, ADJECTIVES))} {where}"


def _subject(rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.35:
        return _pick(rng, NAMES)
    if roll < 0.6:
        return _pick(rng, PLURAL_SUBJECTS + SINGULAR_SUBJECTS)
    return f"THE {_maybe(rng, 0.5, _pick(rng, ADJECTIVES))} {_pick(rng, PEOPLE + ANIMALS)}"


def _clause(rng: np.random.Generator) -> str:
    return f"{_subject(rng)} {_pick(rng, VERBS)[1]} {_noun_phrase(rng)}"


def _templates(rng: np.random.Generator) -> str:
    kind = int(rng.integers(12))
    verb = _pick(rng, VERBS)
    if kind == 0:
        return f"{_clause(rng)} {_place_phrase(rng)} {_maybe(rng, 0.5, _pick(rng, TIMES))}"
    if kind == 1:
        return f"{_subject(rng)} {_pick(rng, NEGATIVES)} {verb[0]} {_noun_phrase(rng)} {_pick(rng, TIMES)}"
    if kind == 2:
        if rng.random() < 0.5:
            return f"{_pick(rng, PLURAL_SUBJECTS)} DON'T {verb[0]} {_noun_phrase(rng)}"
        return f"{_pick(rng, SINGULAR_SUBJECTS + NAMES)} DOESN'T {verb[0]} {_noun_phrase(rng)}"
    if kind == 3:
        adv = _maybe(rng, 0.5, _pick(rng, ADVERBS[:4]))
        return f"IT'S {adv} {_pick(rng, ADJECTIVES)} {_place_phrase(rng)}"
    if kind == 4:
        return f"THAT'S {_pick(rng, POSSESSIVES)} {_maybe(rng, 0.6, _pick(rng, ADJECTIVES))} {_noun(rng)}"
    if kind == 5:
        return f"{_pick(rng, I_AM)} {_pick(rng, STATES)} BECAUSE {_clause(rng)}"
    if kind == 6:
        return f"LET'S {verb[0]} {_noun_phrase(rng)} {_place_phrase(rng)}"
    if kind == 7:
        return f"{_clause(rng)} AND {_pick(rng, VERBS)[1]} {_noun_phrase(rng)}"
    if kind == 8:
        return f"WHEN {_clause(rng)} {_clause(rng)}"
    if kind == 9:
        neg = _pick(rng, ["WAS", "ISN'T", "WASN'T", "IS"])
        return f"THE {_noun(rng)} {neg} {_maybe(rng, 0.4, _pick(rng, ADVERBS))} {_pick(rng, ADJECTIVES)}"
    if kind == 10:
        return f"{_pick(rng, FUTURE_SUBJECTS)} {_pick(rng, MANNER)} {verb[0]} {_noun_phrase(rng)}"
    return f"{_subject(rng)} {_pick(rng, MODALS)} {verb[0]} {_noun_phrase(rng)} {_place_phrase(rng)}"


def make_sentence(rng: np.random.Generator) -> str:
    """One random sentence: uppercase words separated by single spaces."""
    return " ".join(_templates(rng).split())


def subset_of(text: str) -> str:
    """The subset a sentence belongs to, from a hash of its text."""
    bucket = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % HASH_BUCKETS
    return next(name for name, buckets in _BUCKET_OF_SUBSET.items() if bucket in buckets)


def vocabulary() -> list[str]:
    """Every word the sentence generator can produce, sorted."""
    pools = [
        NAMES,
        PEOPLE,
        ANIMALS,
        THINGS,
        FOODS,
        PLACES,
        SPOTS,
        ADJECTIVES,
        STATES,
        PREPOSITIONS,
        DETERMINERS,
        POSSESSIVES,
        ADVERBS,
        MANNER,
        NUMBERS,
        PLURALS,
        PLURAL_SUBJECTS,
        SINGULAR_SUBJECTS,
        NEGATIVES,
        I_AM,
        MODALS,
        FUTURE_SUBJECTS,
        TIMES,
        [w for pair in VERBS for w in pair],
        "DON'T DOESN'T IT'S THAT'S LET'S BECAUSE AND WHEN WAS IS ISN'T WASN'T THE A".split(),
    ]
    return sorted({word for pool in pools for phrase in pool for word in phrase.split()})


def sentences(subset: str, n: int, seed: int) -> list[str]:
    """The first n distinct sentences of a subset for a seed (a prefix of any larger n)."""
    if subset not in SUBSETS:
        raise ValueError(f"subset={subset!r}: expected one of {list(SUBSETS)}")
    rng = np.random.default_rng([seed, SUBSETS.index(subset), 0])
    seen: dict[str, None] = {}
    while len(seen) < n:
        text = make_sentence(rng)
        if subset_of(text) == subset:
            seen.setdefault(text)
    return list(seen)


# ---------------------------------------------------------------------------------------------------
# Voices. A speaker is an espeak-ng accent + voice variant + pitch + base speed. Test speakers use
# (accent, variant) pairs that no training speaker uses; test-other uses accents and variants not in
# test-clean, faster speech and added noise.
# ---------------------------------------------------------------------------------------------------
ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "m8",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "klatt4",
    "adam",
    "linda",
    "john",
    "steph",
    "edward",
    "annie",
    "andy",
)


@dataclass(frozen=True)
class Speaker:
    """espeak-ng settings of one synthetic speaker."""

    speaker_id: int
    accent: str
    variant: str
    pitch: int  # espeak -p, 0..99
    speed_wpm: int  # espeak -s, base words per minute
    snr_db: float | None  # added noise, None for clean


@dataclass(frozen=True)
class SubsetSpec:
    """How the speakers of one subset are drawn."""

    pairs: tuple[tuple[str, str], ...]  # allowed (accent, variant) pairs
    n_speakers: int
    speed_wpm: tuple[int, int]
    snr_db: tuple[float, float] | None
    chapters_per_speaker: int


_CLEAN_PAIRS = (("en-us", "m1"), ("en-gb", "f2"), ("en-gb-x-rp", "m4"), ("en-us", "f4"))
_OTHER_PAIRS = (
    ("en-gb-scotland", "m6"),
    ("en-029", "f3"),
    ("en-us-nyc", "klatt2"),
    ("en-gb-x-gbcwmd", "m8"),
    ("en-gb-x-gbclan", "f5"),
)
_TRAIN_PAIRS = tuple((a, v) for a in ACCENTS for v in VARIANTS if (a, v) not in _CLEAN_PAIRS + _OTHER_PAIRS)
SPECS = {
    "train": SubsetSpec(_TRAIN_PAIRS, 64, (140, 240), (5.0, 30.0), 3),
    "test-clean": SubsetSpec(_CLEAN_PAIRS, 4, (160, 180), None, 2),
    "test-other": SubsetSpec(_OTHER_PAIRS, 4, (215, 240), (8.0, 14.0), 2),
}
# Fraction of training utterances that get noise (the rest stay clean).
TRAIN_NOISE_FRACTION = 0.3


def speakers(subset: str, seed: int) -> list[Speaker]:
    """The speakers of a subset for a seed; ids are distinct across subsets."""
    spec = SPECS[subset]
    rng = np.random.default_rng([seed, SUBSETS.index(subset), 1])
    pair_idx = rng.permutation(len(spec.pairs))[: spec.n_speakers]
    # Ids in disjoint ranges per subset, like LibriSpeech's integer speaker ids.
    base = 1000 + 3000 * SUBSETS.index(subset)
    ids = np.sort(rng.choice(np.arange(base, base + 3000), spec.n_speakers, replace=False))
    out = []
    for sid, i in zip(ids, pair_idx, strict=True):
        accent, variant = spec.pairs[i]
        snr = None if spec.snr_db is None else round(float(rng.uniform(*spec.snr_db)), 1)
        out.append(
            Speaker(
                int(sid),
                accent,
                variant,
                int(rng.integers(30, 71)),
                int(rng.integers(spec.speed_wpm[0], spec.speed_wpm[1] + 1)),
                snr,
            )
        )
    return out


# ---------------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------------
def require_espeak() -> str:
    """Path of the espeak-ng binary, or a RuntimeError saying how to install it."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise RuntimeError(
            "espeak-ng not found on PATH: install the Debian/Ubuntu package 'espeak-ng' (apt-get install -y espeak-ng)"
        )
    return path


def espeak(text: str, voice: str, speed_wpm: int, pitch: int, gap: int = 0) -> np.ndarray:
    """espeak-ng speech of text as float32 samples at 22.05 kHz."""
    cmd = [
        require_espeak(),
        "-v",
        voice,
        "-s",
        str(speed_wpm),
        "-p",
        str(pitch),
        "-g",
        str(gap),
        "--stdout",
        text,
    ]
    wav = subprocess.run(cmd, check=True, capture_output=True).stdout
    # espeak-ng writes a streaming WAV header with placeholder sizes: read the samples after "data".
    start = wav.index(b"data") + 8
    pcm = np.frombuffer(wav[start : start + (len(wav) - start) // 2 * 2], dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Coloured background noise: white noise through a random one-pole low-pass, unit RMS."""
    white = rng.standard_normal(n + 64).astype(np.float32)
    alpha = float(rng.uniform(0.0, 0.9))  # 0 = white, 0.9 = dull rumble
    out = _one_pole(white, alpha)[64:]
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def _one_pole(x: np.ndarray, alpha: float) -> np.ndarray:
    """y[t] = (1 - alpha) x[t] + alpha y[t-1], truncated to a 64-tap FIR (alpha**64 < 1e-2)."""
    taps = (1 - alpha) * alpha ** np.arange(64, dtype=np.float32)
    return np.convolve(x, taps, mode="full")[: len(x)].astype(np.float32)


def add_noise(speech: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """speech plus noise at snr_db, measured against the speech power of the whole utterance."""
    power = float(np.mean(speech**2)) + 1e-12
    return speech + noise(rng, len(speech)) * np.sqrt(power / 10 ** (snr_db / 10))


@dataclass(frozen=True)
class Job:
    """One utterance to synthesise and write."""

    path: str
    text: str
    voice: str
    speed_wpm: int
    pitch: int
    gap: int
    peak: float
    snr_db: float | None
    noise_seed: tuple[int, ...]


def render(job: Job) -> float:
    """Synthesise, resample to 16 kHz, add noise, write 16-bit FLAC; returns the duration in seconds."""
    import soundfile as sf
    import soxr

    audio = espeak(job.text.lower(), job.voice, job.speed_wpm, job.pitch, job.gap)
    audio = soxr.resample(audio, ESPEAK_RATE, SAMPLE_RATE).astype(np.float32)
    audio *= job.peak / (np.abs(audio).max() + 1e-9)
    if job.snr_db is not None:
        audio = add_noise(audio, job.snr_db, np.random.default_rng(list(job.noise_seed)))
        audio *= min(1.0, 0.98 / (np.abs(audio).max() + 1e-9))
    buf = io.BytesIO()
    sf.write(buf, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    Path(job.path).write_bytes(buf.getvalue())
    return len(audio) / SAMPLE_RATE


def plan(out: Path, subset: str, n: int, seed: int) -> tuple[list[Job], dict[Path, list[str]]]:
    """The jobs and the trans.txt contents of one subset (nothing is written)."""
    texts = sentences(subset, n, seed)
    spk = speakers(subset, seed)
    spec = SPECS[subset]
    rng = np.random.default_rng([seed, SUBSETS.index(subset), 2])
    chapter_ids = rng.choice(np.arange(10_000, 99_999), len(spk) * spec.chapters_per_speaker, replace=False)
    jobs: list[Job] = []
    trans: dict[Path, list[str]] = {}
    for i, text in enumerate(texts):
        s = spk[i % len(spk)]
        slot = i // len(spk)
        chapter = int(chapter_ids[spk.index(s) * spec.chapters_per_speaker + slot % spec.chapters_per_speaker])
        idx = slot // spec.chapters_per_speaker
        folder = out / subset / str(s.speaker_id) / str(chapter)
        utt_id = f"{s.speaker_id}-{chapter}-{idx:04d}"
        trans.setdefault(folder / f"{s.speaker_id}-{chapter}.trans.txt", []).append(f"{utt_id} {text}")
        snr = s.snr_db
        if subset == "train":
            snr = float(rng.uniform(*spec.snr_db)) if rng.random() < TRAIN_NOISE_FRACTION else None
        speed = int(np.clip(s.speed_wpm + rng.integers(-10, 11), 80, 450))
        peak = float(rng.uniform(0.3, 0.9)) if subset == "train" else 0.7
        gap = int(rng.integers(0, 3)) if subset == "train" else 0
        jobs.append(
            Job(
                str(folder / f"{utt_id}.flac"),
                text,
                f"{s.accent}+{s.variant}",
                speed,
                s.pitch,
                gap,
                peak,
                snr,
                (seed, SUBSETS.index(subset), i),
            )
        )
    return jobs, trans


def read_subset(root: Path) -> list[tuple[Path, str]]:
    """(flac path, reference text) for every utterance of an OpenSLR subset folder, sorted by id."""
    rows = []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        for line in trans.read_text().splitlines():
            utt_id, _, text = line.partition(" ")
            rows.append((trans.parent / f"{utt_id}.flac", text))
    return sorted(rows, key=lambda r: r[0].name)


def generate(out: Path, subset: str, n: int, seed: int, workers: int = 2, progress: bool = True) -> dict:
    """Write one subset under out/subset and out/subset.json; returns that summary."""
    require_espeak()
    jobs, trans = plan(out, subset, n, seed)
    for path, lines in trans.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    durations = list(_run(jobs, workers, progress, desc=subset))
    summary = {
        "subset": subset,
        "seed": seed,
        "utterances": len(jobs),
        "hours": round(sum(durations) / 3600, 3),
        "speakers": [asdict(s) for s in speakers(subset, seed)],
        "vocabulary_size": len(vocabulary()),
        "espeak_ng": subprocess.run([require_espeak(), "--version"], capture_output=True, text=True).stdout.strip(),
    }
    (out / f"{subset}.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _run(jobs: list[Job], workers: int, progress: bool, desc: str) -> Iterator[float]:
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress)
    if workers <= 1:
        for job in jobs:
            yield render(job)
            bar.update()
    else:
        with Pool(workers) as pool:
            for duration in pool.imap(render, jobs, chunksize=16):
                yield duration
                bar.update()
    bar.close()
