"""Fixture for libcommon/wordpiece.c (tests/unit/test_wordpiece.c): texts and
what transformers' BertTokenizer (5.x: the `tokenizers` BertNormalizer,
BertPreTokenizer, WordPiece, [CLS] $A [SEP]) encodes them to at
max_length=112 with truncation and padding="max_length", with the model
folder tests/fixtures/bert (do_lower_case from its tokenizer_config.json) and
again with do_lower_case=False.

tests/fixtures/bert/vocab.txt is bert-base-uncased's vocab.txt (30522 lines,
sha256 07eced37...038a3, checked below), taken from public GitHub repositories
that commit it (Fr4n13Z/PKGN, Rick2Ricardo/relationship-code and
tingxinli1/ReadOIE, each with some of the [unused0]..[unused98] slots renamed
for their own use; with those 99 lines named back, the three are identical
and hash to the published file).

The texts: cxrphantom reports (findings, impressions, their sentences, and
MGCA-cleaned whole reports, some long enough to be truncated), hand-written
radiology sentences with numbers, "___", punctuation, accents, non-ASCII,
controls and over-long words, and seeded random strings over a mixed
alphabet. Written as tests/fixtures/wordpiece/encoded.jsonl, one object per
text: text, then for "lower" and "cased" the ids up to [SEP] (HF's padding,
[PAD] with mask 0 to 112, is asserted here, so the C test rebuilds it) and
"n_lower"/"n_cased", the word pieces before truncation.
Run: tests/oracle/run.sh make_wordpiece.py (uses bin/cxrphantom when built)."""
import hashlib
import json
import os
import random
import re
import subprocess
import tempfile

from transformers import BertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
BERT = os.path.join(ROOT, "tests", "fixtures", "bert")
OUT = os.path.join(ROOT, "tests", "fixtures", "wordpiece", "encoded.jsonl")
L = 112

with open(os.path.join(BERT, "vocab.txt"), "rb") as f:
    assert hashlib.sha256(f.read()).hexdigest() == "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"

HAND = [
    "PA and lateral views of the chest.",
    "Compared to the prior study from ___, there is no significant change.",
    "Dr. ___ was paged at 10:45 a.m. on ___ to discuss these findings.",
    "There is a 1.2 x 3.4 cm nodule in the right upper lobe (series 3, image 45).",
    "ET tube tip is 4.5 cm above the carina; NG tube courses below the diaphragm.",
    "Mild cardiomegaly, CTR ~0.55.  No effusion!!!",
    "s/p CABG with intact sternotomy wires x7.",
    "Compression deformity of T7-T8, unchanged since 2150-03-04.",
    "Left PICC terminates in the mid-SVC/cavoatrial junction.",
    "Heart size is top-normal; mediastinal contours are unremarkable?",
    "IMPRESSION:\n1. No acute cardiopulmonary process.\n2. Stable 5mm RUL nodule.",
    "FINDINGS:\tLungs clear.\r\nNo pneumothorax.",
    "The patient's O2 saturation was 92% on 2L NC.",
    "AP portable upright view @ 07:32; #2 of 3 images; cost $0.",
    "Bibasilar atelectasis vs. early pneumonia -- clinical correlation recommended.",
    "Café-au-lait, naïve, Sjögren's syndrome and Ménétrier's disease.",
    "Müller maneuver; Ångström; Øresund; Łódź; ĳ; Ŀ; ǅ.",
    "ÀÉÎÕÜ àéîõü ÇÑ çñ ÿŸ",
    "Dose 5 µg/kg; temperature 38.5 °C; ratio ≥ 0.5 and ≤ 1.0 ± 0.1.",
    "En dash – em dash — hyphen ‐ minus − figure ‒.",
    "“Smart quotes” and ‘single ones’ and «guillemets» and „low“.",
    "Fractions ½ ¼ ¾ and superscripts m² cm³ and ordinals 1ª 2º.",
    "肺炎 with 胸腔积液 and 気胸 in Japanese/Chinese text.",
    "폐렴 및 흉막삼출 (Korean).",
    "Греческие буквы: α-1 antitrypsin, β-blocker, γ-knife; Пневмония.",
    "Emoji 🙂 and symbols ★ ☆ ♥ → ← ↑ ↓ ✓ ✗.",
    "Ligatures ﬁ ﬂ ﬀ and full-width ＡＢＣ１２３！",
    "İstanbul, ß, ẞ, ς, Σ, ΐ, ǰ, ﬃ.",
    "zero\u200bwidth\u200cnon\u200djoiner and soft\u00adhyphen and BOM\ufeffhere",
    "no\u00a0break\u2003em\u2009thin\u3000ideographic space",
    "line\u2028separator\u2029paragraph\x85next",
    "bell\x07tab\ttab vt\x0bff\x0cesc\x1bdel\x7fend",
    "replacement \ufffd char and private \ue000 use",
    "combining e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 stacked a\u0301\u0302\u0303",
    "Devanagari निमोनिया and Arabic الالتهاب الرئوي and Hebrew דלקת ריאות",
    "Thai ปอดบวม and Georgian პნევმონია",
    "a" * 100,
    "b" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
    "short " + "x" * 99 + " and " + "y" * 100 + " words",
    "",
    "   ",
    "...",
    "___ ___ ___",
    "!!!???...,,,;;;:::",
    "(((nested [brackets] {braces})))",
    "http://example.org/path?query=1&b=2#frag",
    "email@example.com and #hashtag and @mention",
    "C++ and C# and F# and .NET",
    "3.14159 2,718 1e-5 0x1F 10^6 1/2 50%",
    "The    quick\n\n\nbrown   fox",
    "UPPER CASE REPORT WITH NO LOWER CASE LETTERS.",
    "MiXeD cAsE tExT with CamelCaseWords and snake_case_words.",
    "unaffable unbelievably antidisestablishmentarianism hypertransaminasemia",
    "cardiomediastinal silhouette hemidiaphragm costophrenic retrocardiac",
    "pneumomediastinum pneumopericardium hydropneumothorax tracheobronchomalacia",
    "The 2nd, 3rd and 4th ribs; the 11th and 12th; the 21st.",
    "Tip of the Swan-Ganz catheter in the R interlobar pulmonary artery.",
    "No free air beneath the R hemidiaphragm (upright film).",
    "Port-a-cath with tip at the RA/SVC junction.",
]

TEMPLATES = ["There is {a} {b} in the {c}.", "No {b}.", "{A} {b}, {d} compared to ___.",
             "Interval {e} of the {b} in the {c}.", "{A} {b} ({n} cm) at the {c}; {d}."]
WORDS = dict(
    a=["a small", "a moderate", "a large", "mild", "severe", "trace", "no", "possible"],
    A=["Small", "Moderate", "Large", "Mild", "Severe", "Trace", "Possible", "Subtle"],
    b=["pleural effusion", "pneumothorax", "consolidation", "atelectasis", "opacity", "nodule",
       "cardiomegaly", "pulmonary edema", "hilar enlargement", "rib fracture"],
    c=["right lower lobe", "left apex", "lingula", "retrocardiac region", "right costophrenic angle",
       "mid lung zone", "left hemithorax", "perihilar region"],
    d=["unchanged", "improved", "worsened", "new", "stable", "slightly larger"],
    e=["increase", "decrease", "resolution", "development", "progression"],
)


def mgca_clean(impression, findings):
    """MGCA's report cleaning (as libcommon/report_clean.c does it), for texts
    like the ones pairpack tokenises."""
    text = (impression + " " + findings).replace("\n", " ")
    parts = [s for p in re.split(r"[0-9]+\.", text) for s in p.split(".")]
    out = []
    for s in parts:
        if not s:
            continue
        toks = re.findall(r"\w+", s.replace("\ufffd\ufffd", " ").lower())
        if len(toks) <= 1:
            continue
        toks = [t.encode("ascii", "ignore").decode("ascii") for t in toks]
        toks = [t for t in toks if t]
        if toks:
            out.append(" ".join(toks))
    return " ".join(out)


def phantom_reports():
    exe = os.path.join(ROOT, "bin", "cxrphantom")
    if not os.path.exists(exe):
        print("make_wordpiece: bin/cxrphantom not built; no phantom reports")
        return []
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([exe, "-q", "-o", d, "-n", "80", "--seed", "11", "--size", "32", "--threads", "1"],
                       check=True)
        with open(os.path.join(d, "reports.jsonl")) as f:
            return [json.loads(line) for line in f]


def main():
    rng = random.Random(20261128)
    texts = list(HAND)
    reps = phantom_reports()
    for r in reps:
        texts += [r["findings"], r["impression"]]
        texts.append(mgca_clean(r["impression"], r["findings"]))
    for r in reps[:30]:
        texts += [s.strip() for s in r["findings"].split(".") if s.strip()][:2]
    for i in range(0, len(reps) - 4, 4):  # long cleaned reports: truncated at 112
        texts.append(" ".join(mgca_clean(r["impression"], r["findings"]) for r in reps[i:i + 4]))
    for _ in range(80):
        t = rng.choice(TEMPLATES)
        texts.append(t.format(n=f"{rng.randint(1, 99) / 10:.1f}", **{k: rng.choice(v) for k, v in WORDS.items()}))
    alphabet = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") * 3 + list(" " * 30) +
                list(".,;:!?-_()/'\"%#&*+=<>@$^~`|\\{}") + list("éèêëàâäôöûüçñøåßæœÉÀÖÜÇ") +
                ["\u0301", "\u0308", "\u00a0", "\t", "\n", "\u2013", "\u2014", "\u201c", "\u201d", "\u00b0",
                 "\u00b5", "\u03b1", "\u0416", "\u80ba", "\uac00", "\u200b", "\u00ad", "\ufb01", "\u2028",
                 "\U0001F642", "\x07", "\ufffd"])
    for _ in range(120):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 160))))
    assert not any(s in t for t in texts for s in ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"))

    lower = BertTokenizer.from_pretrained(BERT)
    cased = BertTokenizer.from_pretrained(BERT, do_lower_case=False)
    assert lower.do_lower_case and not cased.do_lower_case
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    n_trunc = 0
    with open(OUT, "w", encoding="utf-8") as f:
        for t in texts:
            rec = {"text": t}
            for name, tok in (("lower", lower), ("cased", cased)):
                e = tok(t, max_length=L, truncation=True, padding="max_length")
                ids, mask = e["input_ids"], e["attention_mask"]
                k = sum(mask)
                assert len(ids) == L and mask == [1] * k + [0] * (L - k)
                assert ids[0] == tok.cls_token_id and ids[k - 1] == tok.sep_token_id
                assert all(i == tok.pad_token_id for i in ids[k:])
                rec[name] = ids[:k]
                rec["n_" + name] = len(tok(t, add_special_tokens=False)["input_ids"])
            n_trunc += rec["n_lower"] > L - 2
            f.write(json.dumps(rec, ensure_ascii=True) + "\n")
    print(f"wrote {os.path.relpath(OUT)}: {len(texts)} texts, {n_trunc} truncated "
          f"({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
