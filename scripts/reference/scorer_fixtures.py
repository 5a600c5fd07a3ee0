#!/usr/bin/env python3
"""Reference values for the deterministic scorers of offline evals (Sources/BakeoffEval/Scoring):

- text pairs: SQuAD v1.1 token F1 (the official evaluation script's functions, copied verbatim below) and ROUGE-L
  F-measure (Google's `rouge-score`, `RougeScorer(["rougeL"], use_stemmer=False)`), with the normalized tokens,
  and the answer's length in words (`len(s.split())`) and code points (`len(s)`);
- JSON Schema: (schema, instance, valid?) from `jsonschema.Draft202012Validator` (every schema checked against the
  meta-schema first);
- regular expressions: `re.search` and `re.fullmatch` on patterns whose meaning is the same in Python's `re` and in
  Swift Regex as the scorer sets it up (code points, simple word boundaries; no `$` before a final line break).

Writes Tests/BakeoffEvalTests/Fixtures/scorers.json. Needs `pip install rouge-score jsonschema`.
"""
import collections
import json
import os
import random
import re
import string
import sys
import unicodedata

import jsonschema
from importlib.metadata import version
from rouge_score import rouge_scorer, tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "BakeoffEvalTests", "Fixtures", "scorers.json")
GENERATOR = (f"scripts/reference/scorer_fixtures.py; Python {sys.version.split()[0]} (Unicode {unicodedata.unidata_version}), "
             f"rouge-score {version('rouge-score')}, jsonschema {version('jsonschema')}")


# --- SQuAD v1.1 evaluation script (evaluate-v1.1.py), verbatim ---------------------------------------------------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1
# -------------------------------------------------------------------------------------------------------------------


HAND_PAIRS = [
    ("", ""), ("", "Paris"), ("Paris", ""), ("   ", "\n\t"), ("The", "the"), ("a an the", ""), ("The.", "A!"),
    ("Paris", "Paris"), ("paris", "PARIS."), ("The Eiffel Tower", "Eiffel tower"), ("the the the cat", "the cat"),
    ("cat cat cat", "cat"), ("cat", "cat cat cat"), ("dog cat", "cat dog"), ("a b c d e f", "f e d c b a"),
    ("Don't stop", "dont stop"), ("state-of-the-art model", "state of the art model"), ("U.S.A.", "USA"),
    ("$1,000", "1000"), ("3.14", "314"), ("e-mail", "email"), ("rock'n'roll", "rock n roll"),
    ("It's 5 o'clock.", "it is 5 oclock"), ("Hello,world", "hello world"), ("hello_world", "hello world"),
    ("C++ and C#", "c and c"), ("(the answer)", "answer"), ("theatre", "the atre"), ("another", "an other"),
    ("a", "A"), ("An apple a day", "apple day"), ("The end", "THE END"),
    ("Zürich", "zurich"), ("Zürich is in Switzerland", "Zurich is in Switzerland"), ("café", "cafe\u0301"),
    ("cafe\u0301", "cafe\u0301"), ("naïve approach", "naive approach"), ("straße", "STRASSE"),
    ("ΟΔΟΣ", "οδος"), ("ΟΔΟΣ", "οδοσ"), ("ΣΑΣ ΣΑΣ", "σας"), ("Σ", "σ"), ("AΣ.", "aς"), ("İstanbul", "istanbul"),
    ("İstanbul", "i̇stanbul"), ("\u212a", "k"), ("\u212aelvin", "kelvin"), ("Ångström", "angstrom"),
    ("東京は日本の首都です", "東京"), ("東京 は 日本", "東京 日本"), ("😀 smile", "smile 😀"), ("👍🏽 ok", "ok"),
    ("Москва — столица России", "москва столица россии"), ("مرحبا بالعالم", "مرحبا"), ("١٢٣", "123"),
    ("the½", "½"), ("a\u0301 b", "b"), ("the\u0301 cat", "cat"), ("x\u00a0y", "x y"), ("x\u2003y", "x y"),
    ("x\u200by", "x y"), ("x\u001cy", "x y"), ("x\u0085y", "x y"), ("x\u3000y", "x y"), ("tab\tsep\nnew\rline", "tab sep new line"),
    ("«quoted»", "quoted"), ("“smart quotes”", "smart quotes"), ("em—dash", "em dash"), ("ﬁne", "fine"),
    ("1st 2nd 3rd", "1st 2nd 3rd"), ("100%", "100"), ("#hashtag @mention", "hashtag mention"),
    ("The quick brown fox jumps over the lazy dog", "A quick brown dog jumps over the lazy fox"),
    ("Yes, within 30 days.", "Yes, refunds are possible within 30 days of purchase."),
    ("No.", "Yes"), ("42", "42"), ("42", "forty-two"), ("4 2", "42"),
    ("police killed the gunman", "police kill the gunman"), ("the gunman kill police", "police killed the gunman"),
]

VOCAB = ("the a an The A An cat dog Paris paris PARIS refund within 30 days yes no model answer of to in is "
         "café Zürich naïve ΟΔΟΣ σ İ 東京 😀 ½ ١٢ don't state-of-the-art U.S. $5 3.14 (x) [y] — … , . ! ? ; :").split()
SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", "\u00a0", ",", ", ", ". ", "-", "\u2003"]


def random_text(rng, max_words):
    n = rng.randint(0, max_words)
    out = []
    for i in range(n):
        out.append(rng.choice(VOCAB))
        if i < n - 1:
            out.append(rng.choice(SEPARATORS))
    text = "".join(out)
    if rng.random() < 0.2:
        text = text.upper()
    if rng.random() < 0.2:
        text = " " + text + rng.choice([".", "!", " ", "\n"])
    return text


def text_pairs():
    rng = random.Random(20260511)
    pairs = list(HAND_PAIRS)
    for _ in range(260):
        reference = random_text(rng, 14)
        if rng.random() < 0.4:
            # A variant of the reference: shuffled, trimmed, repeated or with an extra word.
            words = reference.split()
            choice = rng.random()
            if choice < 0.3:
                rng.shuffle(words)
            elif choice < 0.6:
                words = words[: rng.randint(0, len(words))]
            elif choice < 0.8:
                words = words + words[: rng.randint(0, 3)]
            else:
                words.insert(rng.randint(0, len(words)), rng.choice(VOCAB))
            answer = " ".join(words)
        else:
            answer = random_text(rng, 14)
        pairs.append((answer, reference))
    # Longer texts, for the LCS.
    for _ in range(20):
        pairs.append((random_text(rng, 120), random_text(rng, 120)))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    out = []
    for answer, reference in pairs:
        out.append({
            "answer": answer, "reference": reference,
            "token_f1": float(f1_score(answer, reference)),
            "squad_tokens": normalize_answer(answer).split(),
            "rouge_l": scorer.score(reference, answer)["rougeL"].fmeasure,
            "rouge_tokens": tokenize.tokenize(answer, None),
            "words": len(answer.split()), "characters": len(answer),
        })
    return out


# Each schema with instances given as JSON text (as a model would answer).
SCHEMAS = [
    ({"type": "object"}, ['{}', '{"a": 1}', '[]', '"x"', '1', 'null', 'true']),
    ({"type": "integer"}, ['1', '1.0', '-3', '1.5', '1e2', '"1"', 'true', '0', '-0.0', '9007199254740993']),
    ({"type": "number"}, ['1', '1.5', '-2e-3', '"1"', 'true', 'false', 'null']),
    ({"type": ["string", "null"]}, ['"a"', 'null', '1', '[]', '{}']),
    ({"type": "boolean"}, ['true', 'false', '0', '1', '"true"']),
    ({"type": "array", "items": {"type": "string"}}, ['[]', '["a", "b"]', '["a", 1]', '{"0": "a"}']),
    ({"enum": ["red", "green", 1, None, True, [1, 2], {"a": 1}]},
     ['"red"', '"blue"', '1', '1.0', 'true', 'false', '0', 'null', '[1, 2]', '[1.0, 2]', '[2, 1]', '{"a": 1}', '{"a": 1.0}', '{"a": true}', '{"a": 1, "b": 2}']),
    ({"enum": [0, False]}, ['0', '0.0', 'false', 'null', '""']),
    ({"const": {"k": [1, "x", None]}}, ['{"k": [1, "x", null]}', '{"k": [1.0, "x", null]}', '{"k": [true, "x", null]}', '{"k": [1, "x"]}', '{"k": [1, "x", null], "z": 0}']),
    ({"const": 1}, ['1', '1.0', 'true', '"1"']),
    ({"const": True}, ['true', '1', 'false']),
    ({"type": "object", "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer", "minimum": 0}},
      "required": ["name"], "additionalProperties": False},
     ['{"name": "Ann"}', '{"name": "Ann", "age": 30}', '{"name": ""}', '{"age": 3}', '{"name": "A", "age": -1}',
      '{"name": "A", "age": 2.5}', '{"name": "A", "extra": 1}', '{"name": "A", "age": 30.0}', '[]', '"x"']),
    ({"properties": {"a": {"type": "number"}}, "additionalProperties": {"type": "string"}},
     ['{"a": 1, "b": "x"}', '{"a": 1, "b": 2}', '{"b": "x", "c": "y"}', '{"a": "1"}', '3', '{}']),
    ({"required": ["a", "b"]}, ['{"a": 1, "b": 2}', '{"a": 1}', '{}', '[]', '"a"']),
    ({"minProperties": 1, "maxProperties": 2}, ['{}', '{"a": 1}', '{"a": 1, "b": 2}', '{"a": 1, "b": 2, "c": 3}', '[]']),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
     ['["a", 1]', '["a"]', '[]', '["a", 1, 2]', '[1, "a"]', '["a", 1.5]']),
    ({"prefixItems": [{"const": "x"}], "items": {"type": "number"}, "minItems": 2, "maxItems": 4},
     ['["x", 1]', '["x"]', '["x", 1, 2, 3]', '["x", 1, 2, 3, 4]', '["y", 1]', '["x", "y"]', '{}']),
    ({"uniqueItems": True}, ['[]', '[1, 2, 3]', '[1, 1]', '[1, 1.0]', '[1, true]', '[0, false]', '["a", "A"]', '[[1], [1]]',
                             '[{"a": 1, "b": 2}, {"b": 2, "a": 1}]', '[{"a": 1}, {"a": 2}]', '[null, null]', '[[1, 2], [2, 1]]', '"aa"']),
    ({"type": "string", "minLength": 2, "maxLength": 3},
     ['"a"', '"ab"', '"abc"', '"abcd"', '"é"', '"e\\u0301"', '"😀"', '"😀😀"', '"\\ud83d\\ude00a"', '"日本語"', '3']),
    ({"pattern": "^[A-Z]{2}-\\d{3}$"}, ['"AB-123"', '"ab-123"', '"AB-1234"', '"xAB-123"', '"AB-١٢٣"', '12']),
    ({"pattern": "colou?r"}, ['"color"', '"my colour"', '"COLOR"', '"colr"', '""']),
    ({"type": "string", "pattern": "^\\S+@\\S+\\.\\w+$"}, ['"a@b.co"', '"a b@c.de"', '"no-at.com"', '"x@y.z1"']),
    ({"minimum": 1, "maximum": 10}, ['1', '10', '0.999', '10.001', '5', '"5"', 'null']),
    ({"exclusiveMinimum": 0, "exclusiveMaximum": 1}, ['0', '1', '0.5', '1e-9', '-0.0', '0.9999999']),
    ({"multipleOf": 3}, ['0', '3', '9', '-6', '4', '3.0', '1.5', '1e20', '"3"']),
    ({"multipleOf": 0.1}, ['0.5', '0.3', '1', '0.25', '12.3', '7']),
    ({"multipleOf": 0.25}, ['0.5', '0.75', '0.1', '100', '1e308']),
    ({"multipleOf": 0.01}, ['19.99', '0.1', '1.005', '4.2']),
    ({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 5}]}, ['"a"', '5', '4', 'null', '7.5']),
    ({"oneOf": [{"type": "integer"}, {"minimum": 2}]}, ['1', '3', '2.5', '1.5', '"x"']),
    ({"allOf": [{"type": "number"}, {"maximum": 5}, {"not": {"const": 3}}]}, ['1', '3', '6', '"a"']),
    ({"not": {"type": "null"}}, ['null', '0', '""', '{}']),
    ({"$defs": {"pos": {"type": "integer", "exclusiveMinimum": 0}},
      "type": "object", "properties": {"x": {"$ref": "#/$defs/pos"}, "ys": {"type": "array", "items": {"$ref": "#/$defs/pos"}}}},
     ['{"x": 1, "ys": [1, 2]}', '{"x": 0}', '{"ys": [1, -1]}', '{}', '{"x": 1.5}']),
    ({"$defs": {"node": {"type": "object", "properties": {"value": {"type": "number"}, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                         "required": ["value"], "additionalProperties": False}},
      "$ref": "#/$defs/node"},
     ['{"value": 1}', '{"value": 1, "children": [{"value": 2, "children": []}]}', '{"value": 1, "children": [{"children": []}]}',
      '{"value": 1, "children": [{"value": 2, "children": [{"value": "x"}]}]}', '{"value": 1, "other": 2}']),
    ({"type": ["object", "array"], "items": {"$ref": "#"}, "additionalProperties": {"$ref": "#"}},
     ['[]', '[[], {}]', '[[1]]', '{"a": {"b": []}}', '{"a": {"b": 1}}', '1']),
    ({"$defs": {"a/b": {"const": 1}, "t~": {"const": 2}}, "anyOf": [{"$ref": "#/$defs/a~1b"}, {"$ref": "#/$defs/t~0"}]},
     ['1', '2', '3']),
    ({"$ref": "#/$defs/s", "maxLength": 3, "$defs": {"s": {"type": "string"}}}, ['"abc"', '"abcd"', '1']),
    (True, ['1', 'null', '{}']),
    (False, ['1', 'null', '{}']),
    ({"properties": {"a": False, "b": True}}, ['{}', '{"b": 1}', '{"a": 1}']),
    ({"title": "T", "description": "D", "$comment": "c", "default": 1, "examples": [1], "deprecated": False,
      "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "integer"}, ['1', '"x"']),
    ({"type": "object", "required": ["answer", "confidence"],
      "properties": {"answer": {"enum": ["yes", "no", "unsure"]}, "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                     "sources": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}, "uniqueItems": True, "maxItems": 3}}},
     ['{"answer": "yes", "confidence": 0.9}', '{"answer": "maybe", "confidence": 0.9}', '{"answer": "no", "confidence": 1.5}',
      '{"answer": "no", "confidence": 0, "sources": ["https://a.org", "http://b.org"]}', '{"answer": "no", "confidence": 0, "sources": ["ftp://a"]}',
      '{"answer": "no", "confidence": 0, "sources": ["http://a", "http://a"]}', '{"answer": "yes"}', '{"answer": "yes", "confidence": 0.5, "answer": "maybe"}']),
]


def schema_cases():
    out = []
    for schema, instances in SCHEMAS:
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        for text in instances:
            out.append({"schema": json.dumps(schema, ensure_ascii=False), "instance": text,
                        "valid": validator.is_valid(json.loads(text))})
    return out


REGEXES = [
    (r"\d+", ["abc", "a1", "١٢٣", "", "12"]),
    (r"^\d{3}-\d{4}$", ["555-1234", "555-12345", "x555-1234", "٥٥٥-١٢٣٤"]),
    (r"[A-Z][a-z]+", ["Hello", "hello", "HELLO", "Élan", "x Yz"]),
    (r"(?i)hello", ["HeLLo there", "help", "HELLO"]),
    (r"\bcat\b", ["a cat.", "concat", "cat", "cats", "the_cat", "don't cat"]),
    (r"\bdon\b", ["don't", "don"]),
    (r"colou?r", ["color", "colour", "colouur"]),
    (r"^(yes|no)$", ["yes", "no", "yes no", "Yes", "maybe"]),
    (r"(?i)^(yes|no)\.?$", ["YES.", "no", "No!", "nope"]),
    (r"\w+", ["Zürich", "東京", "---", "_", "é"]),
    (r"^\w+$", ["Zürich", "e\u0301", "東京", "a-b", "snake_case"]),
    (r"^.$", ["a", "é", "e\u0301", "😀", "👍🏽", ""]),
    (r"e", ["e\u0301", "é", "E"]),
    (r"\s", ["a b", "a\u00a0b", "a\tb", "ab", "a\u2003b"]),
    (r"a.c", ["abc", "a\nc", "ac", "a😀c"]),
    (r"(?s)a.c", ["a\nc", "abc"]),
    (r"(?m)^b$", ["a\nb\nc", "ab", "b"]),
    (r"^a|b$", ["ax", "xb", "xbx"]),
    (r"x*", ["", "abc", "xxx"]),
    (r"(\w)\1", ["hello", "abc", "aa"]),
    (r"(?P<d>\d)-(?P=d)", ["1-1", "1-2"]),
    (r"a(?=b)", ["ab", "ac"]),
    (r"a(?!b)", ["ab", "ac", "abab"]),
    (r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", ["user@example.com", "bad@", "a b@c.de", "x@y.z"]),
    (r"\{\s*\"answer\"\s*:", ['{"answer": 1}', '{ "answer" :2}', 'answer: 1']),
    (r"[0-9a-f]{8}", ["deadbeef", "DEADBEEF", "xyz12345678"]),
    (r"^\S+$", ["one", "two words", ""]),
    (r"\.$", ["end.", "end", "end.\x20"]),
    (r"^(a+)+$", ["aaaa", "aaab"]),
]


def regex_cases():
    out = []
    for pattern, texts in REGEXES:
        compiled = re.compile(pattern)
        for text in texts:
            out.append({"pattern": pattern, "text": text,
                        "search": compiled.search(text) is not None, "full_match": compiled.fullmatch(text) is not None})
    return out


def main():
    pairs = text_pairs()
    schemas = schema_cases()
    regexes = regex_cases()
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"generator": GENERATOR, "text_pairs": pairs, "json_schema": schemas, "regex": regexes}, f,
                  indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(pairs)} text pairs, {len(schemas)} JSON Schema cases ({len(SCHEMAS)} schemas), "
          f"{len(regexes)} regex cases -> {OUT}")


if __name__ == "__main__":
    main()
