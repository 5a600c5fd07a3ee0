#!/usr/bin/env python3
"""Generate the assignment fixture from the seed's reference ABRouter.

Run from the repository root (standard library only; any Python 3.8+):

    .venv/bin/python scripts/reference/assignment_fixture.py

It writes Tests/BakeoffCoreTests/Fixtures/assignment/ids.tsv (or the path given as the first argument).
The output is deterministic: a fixed random seed, so re-running reproduces the committed file byte for
byte.

Format: UTF-8, one row per line ending in "\\n", fields separated by "\\t", a header line first.
Columns: experiment, user_id, bucket, then the ABRouter result at split 0.2, 0.5, 0.05 and 0.3333,
written as T (treatment) or C (control) to keep the file small. bucket is
int(md5("{experiment}:{user_id}".encode()).hexdigest(), 16) % 10000.

No experiment or user ID contains "\\t", "\\n", "\\r" or any other character Python's str.splitlines()
treats as a line break, so the file can be split on bytes 0x0A and 0x09. User IDs are not
Unicode-normalized: NFC and NFD spellings of the same text are distinct IDs with different buckets.
"""

import hashlib
import random
import sys
import unicodedata
import uuid
from pathlib import Path
from typing import Literal

SEED = 20240611
SPLITS = (0.2, 0.5, 0.05, 0.3333)

# Prefix "{experiment}:" lengths 19, 23, 64 (exactly one MD5 block) and 88 bytes cover the Swift code's
# precomputed-prefix paths; the second name is non-ASCII.
EXPERIMENTS = (
    ("fine-tuned-v2-test", 0.45),
    ("тест-β-🧪微调", 0.45),
    ("support-bot/llama3.1-8b-ft-v1-vs-v2/dataset-iter-2024-06/canary", 0.05),
    ("experiment with spaces, punctuation & a long name: ñandú — long enough for 2 blocks", 0.05),
)


# --- The seed's reference router, verbatim. ---------------------------------------------------------
class ABRouter:
    """Deterministic A/B routing by user_id"""

    def __init__(self, experiment_name: str, split: float = 0.5):
        self.experiment_name = experiment_name
        self.split = split  # Share of traffic for variant B

    def assign(self, user_id: str) -> Literal["control", "treatment"]:
        """Single user always goes to same group"""
        hash_input = f"{self.experiment_name}:{user_id}"
        hash_value = int(hashlib.md5(hash_input.encode()).hexdigest(), 16)
        normalized = (hash_value % 10000) / 10000
        return "treatment" if normalized < self.split else "control"
# ------------------------------------------------------------------------------------------------------


LINE_BREAKS = set("\n\r\t\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")

CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"
CJK = "用户测试模型数据中文字符日本語のテストユーザー한국어사용자"
HEBREW = "אבגדהוזחטיכלמנסעפצקרשת"
ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
EMOJI = [
    "😀", "🚀", "🧪", "🎉", "❤️", "👍🏽", "🇺🇦", "🇯🇵", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🤖", "🦄", "🍕",
    "1️⃣", "©", "™", "✓",
]
COMBINING = ["\u0301", "\u0300", "\u0308", "\u0327", "\u030a", "\u0303", "\u0323", "\u20dd"]
INVISIBLE = ["\u200b", "\u200d", "\u200e", "\u200f", "\u202e", "\u00a0", "\ufeff", "\u2060"]
PUNCT = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
LATIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ACCENTED_WORDS = ["café", "naïve", "résumé", "Zoë", "Ångström", "piñata", "Ñandú", "façade", "Łódź", "Straße"]
FIRST = ["anna", "ivan", "li.wei", "maria", "o'brien", "jose", "yuki", "fatima", "noah", "zoë", "søren"]
DOMAINS = ["example.com", "mail.ru", "gmail.com", "corp.example.co.uk", "xn--80ak6aa92e.com", "пример.рф", "例子.中国"]


def numeric(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.7:
        return str(rng.randrange(10 ** rng.randint(1, 19)))
    if kind < 0.85:
        return str(rng.randrange(10 ** 6)).zfill(rng.randint(7, 12))  # leading zeros
    if kind < 0.95:
        return "-" + str(rng.randrange(1, 10 ** 9))
    return str(rng.getrandbits(128))  # bigger than 64 bits


def uuid_like(rng: random.Random) -> str:
    u = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    kind = rng.random()
    if kind < 0.2:
        return u.upper()
    if kind < 0.35:
        return u.replace("-", "")
    if kind < 0.45:
        return "{" + u + "}"
    return u


def email(rng: random.Random) -> str:
    local = rng.choice(FIRST)
    if rng.random() < 0.5:
        local += "." + rng.choice(FIRST)
    if rng.random() < 0.3:
        local += "+" + "".join(rng.choice(LATIN) for _ in range(rng.randint(1, 8)))
    if rng.random() < 0.3:
        local += str(rng.randrange(1000))
    if rng.random() < 0.1:
        local = local.upper()
    return f"{local}@{rng.choice(DOMAINS)}"


def prefixed(rng: random.Random) -> str:
    prefix = rng.choice(["u", "user", "usr_", "acct:", "U", "customer", "id", "tenant/42/user"])
    sep = "" if prefix[-1] in "_:/" else rng.choice(["-", "_", ":", "", "-"])
    return f"{prefix}{sep}{rng.randrange(10 ** rng.randint(1, 9))}"


def pick(rng: random.Random, alphabet: str, lo: int, hi: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def non_ascii(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        return pick(rng, CYRILLIC, 2, 16) + rng.choice(["", "-", "_", " "]) + str(rng.randrange(10000))
    if kind == 1:
        return pick(rng, CJK, 1, 10)
    if kind == 2:
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6))) + rng.choice(["", str(rng.randrange(999))])
    if kind == 3:
        # Combining accents on Latin letters; half NFD-normalized words, half free-form stacks.
        if rng.random() < 0.5:
            word = rng.choice(ACCENTED_WORDS)
            return unicodedata.normalize(rng.choice(["NFC", "NFD"]), word) + str(rng.randrange(1000))
        return "".join(rng.choice(LATIN) + "".join(rng.choice(COMBINING) for _ in range(rng.randint(0, 3)))
                       for _ in range(rng.randint(1, 8)))
    if kind == 4:
        # RTL text, sometimes with direction marks and digits mixed in.
        text = pick(rng, rng.choice([HEBREW, ARABIC]), 2, 12)
        if rng.random() < 0.5:
            text = rng.choice(["\u200f", "\u200e", "\u202b", "\u202e"]) + text + str(rng.randrange(100))
        return text
    if kind == 5:
        return pick(rng, LATIN, 1, 6) + rng.choice(INVISIBLE) + pick(rng, LATIN, 1, 6)
    if kind == 6:
        # Random code points from several planes (no surrogates, controls or line breaks).
        out = []
        for _ in range(rng.randint(1, 12)):
            lo, hi = rng.choice([(0xA0, 0x24F), (0x370, 0x3FF), (0x900, 0x97F), (0x3040, 0x30FF),
                                 (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF), (0x1F300, 0x1FAFF),
                                 (0x10000, 0x1007F), (0x20000, 0x2A6DF), (0xFFF0, 0xFFFD)])
            out.append(chr(rng.randint(lo, hi)))
        return "".join(out)
    if kind == 7:
        return rng.choice(FIRST) + "@" + rng.choice(["пример.рф", "例子.中国", "exämple.de"])
    return rng.choice(["", "ü", "ß", "İ", "ǅ", "ﬁ", "Ω", "Ω"]) + pick(rng, CYRILLIC + CJK + LATIN, 1, 10)


def punctuated(rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return " " * rng.randint(1, 3) + pick(rng, LATIN, 1, 10) + " " * rng.randint(0, 3)
    if kind == 1:
        return pick(rng, LATIN + PUNCT, 1, 30)
    if kind == 2:
        return pick(rng, PUNCT, 1, 12)
    if kind == 3:
        return f"{rng.choice(FIRST)} {rng.choice(FIRST)}" + rng.choice(["", ",", ";", " ", "  x", "\"quoted\"", "\\"])
    return rng.choice(["a=1,b=2", "user:42", "key=\"v\"", "100%", "C:\\Users\\x", "<script>", "${HOME}", "%s%n", "null",
                       "NULL", "None", "undefined", "NaN", "true", "0", "-0", "1e5", "0x1F", "#1", "'; DROP TABLE"]) + \
        rng.choice(["", str(rng.randrange(10 ** 6))])


def very_long(rng: random.Random) -> str:
    n = rng.randint(500, 5000)
    kind = rng.randrange(4)
    if kind == 0:
        return pick(rng, LATIN, n, n)
    if kind == 1:
        return pick(rng, LATIN + PUNCT + CYRILLIC, n, n)
    if kind == 2:
        unit = "user-" + str(rng.randrange(10 ** 6)) + "-"
        return (unit * (n // len(unit) + 1))[:n]
    return "".join(rng.choice([rng.choice(LATIN), rng.choice(CJK), rng.choice(EMOJI), rng.choice(CYRILLIC)])
                   for _ in range(max(500, n // 2)))


def boundary_lengths() -> list[str]:
    """IDs whose hashed message ("{experiment}:{id}") straddles MD5's 55/56/64-byte padding boundaries."""
    ids = []
    for n in range(0, 140):
        ids.append("x" * n)
        ids.append("é" * (n // 2))  # 2-byte UTF-8
    return ids


GENERATORS = (
    (numeric, 0.22),
    (uuid_like, 0.15),
    (email, 0.13),
    (prefixed, 0.20),
    (non_ascii, 0.18),
    (punctuated, 0.12),
)


def generate_ids(rng: random.Random, count: int, long_count: int) -> list[str]:
    seen: set[str] = set()
    ids: list[str] = []

    def add(user_id: str) -> None:
        assert not (set(user_id) & LINE_BREAKS), repr(user_id)
        user_id.encode()  # no lone surrogates
        if user_id not in seen:
            seen.add(user_id)
            ids.append(user_id)

    for _ in range(long_count):
        add(very_long(rng))
    functions = [f for f, _ in GENERATORS]
    weights = [w for _, w in GENERATORS]
    while len(ids) < count:
        add(rng.choices(functions, weights)[0](rng))
    rng.shuffle(ids)
    return ids


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[2] / "Tests/BakeoffCoreTests/Fixtures/assignment/ids.tsv"
    rng = random.Random(SEED)
    names = [name for name, _ in EXPERIMENTS]
    shares = [share for _, share in EXPERIMENTS]
    # Boundary-length IDs under every experiment first, then each generated ID under one experiment.
    rows = [(name, user_id) for user_id in boundary_lengths() for name in names]
    rows += [(rng.choices(names, shares)[0], user_id) for user_id in generate_ids(rng, count=110_000, long_count=300)]
    routers = {name: [ABRouter(name, split) for split in SPLITS] for name in names}
    lines = ["experiment\tuser_id\tbucket\t" + "\t".join(f"split_{s}" for s in SPLITS)]
    for name, user_id in rows:
        assert not (set(name + user_id) & LINE_BREAKS), repr((name, user_id))
        bucket = int(hashlib.md5(f"{name}:{user_id}".encode()).hexdigest(), 16) % 10000
        flags = ["T" if r.assign(user_id) == "treatment" else "C" for r in routers[name]]
        lines.append("\t".join([name, user_id, str(bucket), *flags]))
    data = ("\n".join(lines) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"wrote {len(rows)} rows, {len(data)} bytes to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
