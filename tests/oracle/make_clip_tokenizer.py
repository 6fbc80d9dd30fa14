"""Reference ids for libcommon/clip_tokenizer.c: radiology-style sentences
(written for this test; no patient text) tokenized exactly as a diffusers
StableDiffusionPipeline does it with transformers 5 (CLIPTokenizer, which is the
`tokenizers`-backed class: NFC + whitespace + lowercase normaliser, the CLIP split
regex, ByteLevel, BPE with "</w>"; no ftfy), called with padding="max_length",
max_length=tokenizer.model_max_length, truncation=True. Done for the SD 1.x folder
(pad "<|endoftext|>") and the SD 2.x folder (pad "!") under tests/fixtures/tokenizers/.
Writes clip_tokenizer_ref.safetensors (ids_sd1, ids_sd2 [N, 77] int32 and the
lengths before padding) and clip_tokenizer_ref.jsonl (the sentences, one JSON
string a line, same order)."""
import json
import os
import random

import torch
import transformers
from transformers import CLIPTokenizer

from oracle_util import FIXTURES, save

HAND = [
    "PA and lateral views of the chest.",
    "No acute cardiopulmonary process.",
    "The lungs are clear. No pleural effusion or pneumothorax.",
    "Heart size is normal. Mediastinal and hilar contours are unremarkable.",
    "Mild cardiomegaly with small bilateral pleural effusions.",
    "Left lower lobe opacity, concerning for pneumonia.",
    "Right upper lobe nodule measuring 3.2 cm.",
    "A 1.5 x 2.0 cm nodule in the right middle lobe.",
    "Endotracheal tube terminates 4.5 cm above the carina.",
    "NG tube courses below the diaphragm, tip in the stomach.",
    "Nasogastric tube tip is not visualized.",
    "Right internal jugular central venous catheter with tip in the mid SVC.",
    "Left PICC line terminates in the low SVC.",
    "s/p CABG with intact median sternotomy wires.",
    "S/P median sternotomy and CABG. Stable postoperative appearance.",
    "Compression deformity of T10-T11 vertebral bodies, unchanged.",
    "Mild degenerative changes of the thoracic spine at T6-T8.",
    "Ratio 1:2, cardiothoracic ratio 0.55.",
    "Findings: ___ year old man with cough. Impression: no pneumonia.",
    "Comparison is made to the prior study from ___.",
    "Dr. ___ was notified by telephone at 10:45 on ___.",
    "Moderate pulmonary edema, worse than on ___.",
    "Interval increase in the right pleural effusion.",
    "Interval resolution of the left basilar atelectasis.",
    "Bibasilar atelectasis. No focal consolidation.",
    "Hyperinflated lungs consistent with COPD.",
    "Emphysematous changes, upper lobe predominant.",
    "Small left apical pneumothorax, approximately 1 cm.",
    "Large right tension pneumothorax with mediastinal shift to the left!",
    "Pneumothorax?? Cannot exclude a tiny apical one.",
    "No free air under the diaphragm.",
    "Pacemaker with leads in the right atrium and right ventricle.",
    "Dual-chamber pacemaker/ICD, leads unchanged in position.",
    "Calcified granuloma in the left upper lobe (5 mm).",
    "Multiple bilateral pulmonary nodules, likely metastases.",
    "Reticular opacities at the lung bases, c/w fibrosis.",
    "Tortuous aorta; aortic knob calcification.",
    "Widened mediastinum -- recommend CT for further evaluation.",
    "Impression:\n1. No acute process.\n2. Stable cardiomegaly.",
    "FINDINGS:\tThe heart is mildly enlarged.\tLungs clear.",
    "   Leading and trailing spaces around the report.   ",
    "Double  spaces   between    words.",
    "Line one.\r\nLine two.\r\n\r\nLine three.",
    "ET tube 5 cm above carina; OG tube in stomach; R IJ line in SVC.",
    "HR 72 bpm, BP 120/80 mmHg, SpO2 98% on 2L NC.",
    "Heart size upper limits of normal (CTR ~0.5).",
    "Right-sided chest tube in place; no residual pneumothorax.",
    "Left chest tube removed; tiny residual apical PTX.",
    "Post-op changes from R VATS wedge resection.",
    "Status post left mastectomy with axillary clips.",
    "Old healed left 5th-7th rib fractures.",
    "Acute displaced fracture of the right 8th rib.",
    "Subcutaneous emphysema along the right chest wall.",
    "Hiatal hernia, moderate in size.",
    "Elevated right hemidiaphragm, unchanged since 2019.",
    "Linear atelectasis at the left base vs. scarring.",
    "Patchy airspace opacities in both lungs, e.g. multifocal pneumonia.",
    "Findings are suspicious for aspiration, i.e. RLL involvement.",
    "Lungs are well expanded & clear.",
    "Cardiac silhouette is within normal limits; aorta is unfolded.",
    "Vascular congestion without frank edema.",
    "Kerley B lines and peribronchial cuffing - interstitial edema.",
    "Port-a-cath via left subclavian, tip at cavoatrial junction.",
    "Swan-Ganz catheter tip in the right descending pulmonary artery.",
    "IABP tip 2 cm below the aortic knob.",
    "Feeding tube (Dobhoff) with tip in the duodenum.",
    "Tracheostomy tube in standard position.",
    "No change compared to prior radiograph dated ___/___/___.",
    "AP portable upright view of the chest at 06:12.",
    "Single frontal view. Rotated patient limits assessment.",
    "Low lung volumes accentuate the bronchovascular markings.",
    "There's no pneumothorax; it's unchanged. We've reviewed; they'll follow up; I'm sure; he'd agree.",
    "THERE'S NO EFFUSION. IT'S STABLE. WE'VE SEEN IT. THEY'LL CALL.",
    "Patient's ETT isn't visualized; don't remove the line.",
    "Left-sided pleural effusion with loculation?",
    "'quoted' finding and \"double quoted\" finding.",
    "Size: 12mm (previously 10mm), growth +20%.",
    "Nodule #3 at 11 o'clock, 7-8 mm.",
    "Volumes: 2.5L -> 3.0L; ratio 0.8/1.0.",
    "Temp 38.5C; WBC 14.2K.",
    "COVID-19 pneumonia: bilateral peripheral GGOs.",
    "Ground-glass opacities (GGO) in a crazy-paving pattern.",
    "Bronchiectasis in the RML and lingula.",
    "Cavitary lesion in the RUL, ? TB.",
    "Apical pleural thickening bilaterally, likely chronic.",
    "Calcified pleural plaques c/w prior asbestos exposure.",
    "Azygos fissure, a normal variant.",
    "Pectus excavatum deformity.",
    "Scoliosis of the thoracolumbar spine convex to the right.",
    "Surgical clips in the RUQ from prior cholecystectomy.",
    "Diffuse osteopenia. Kyphoplasty at L1.",
    "Prosthetic aortic valve (TAVR) and mitral annuloplasty ring.",
    "LVAD in place; no pulmonary edema.",
    "Esophageal stent projects over the mid thorax.",
    "Mediastinal lymphadenopathy vs. vascular prominence.",
    "Biapical scarring; no acute abnormality.",
    "#1 no PTX #2 ETT ok #3 NGT ok",
    "[Addendum] Findings discussed with ___ at ___ pm.",
    "{Template} <insert findings here> | end",
    "Email ___@___.com, phone ___-___-____.",
    "~~~ *** +++ === ___ --- ...",
    "Mixed CaSe WoRdS: PnEuMoThOrAx And EfFuSiOn.",
    "ALL CAPS IMPRESSION: NO ACUTE CARDIOPULMONARY ABNORMALITY.",
    "lower case only: stable appearance of the chest.",
    "Numbers 0123456789 and 3.14159 and 1,000,000 and 1e-5.",
    "Dates 2021-03-04, 03/04/2021, and 4.3.21.",
    "Temperatures 37°C and 98.6°F.",
    "Nodule 5 µm? No, 5 mm; dose 10 µg/kg.",
    "Blood pressure 120±15 mmHg.",
    "Lesion measures 3 × 4 × 5 cm.",
    "Range 2–3 cm (en dash) — and an em dash.",
    "“Smart quotes” around the ‘finding’ and it’s there.",
    "Patient’s chest film: no change.",
    "Café-au-lait spots noted; naïve lung; résumé of findings.",
    "Pleural effusion (épanchement pleural) in French.",
    "Ödem der Lunge, Größe normal.",
    "Neumotórax pequeño en el ápice izquierdo.",
    "Ångström-scale detail; Æsophagus (archaic); Œdema.",
    "Greek letters: α-1 antitrypsin, β-blocker, γ-globulin, Δ change.",
    "ΣΑΣ and Σίσυφος in capitals and lower case σας.",
    "Full-width: ＣＴ ｓｃａｎ ＰＡ１２３.",
    "CJK: 肺 (lung) and 心 (heart).",
    "Emoji: 🫁 lungs and ❤️ heart and 👍.",
    "Ligature ﬁndings and ﬂuid (ﬁ ﬂ).",
    "Superscripts m² and cm³ and x¹⁰.",
    "Fractions ½ and ¼ and ¾ of the lung.",
    "Roman numerals Ⅱ and Ⅻ; circled ①②③.",
    "Decomposed e\u0301 and n\u0303 and A\u030a must be composed.",
    "Combining marks q\u0301 and x\u0323\u0307 stay separate.",
    "Non-breaking\u00a0space and thin\u2009space and ideographic\u3000space.",
    "Zero\u200bwidth space and soft\u00adhyphen.",
    "Turkish İstanbul and dotless ı.",
    "German ẞ capital sharp s and ß.",
    "Cyrillic: Пневмоторакс справа.",
    "Arabic digits ٣ and Devanagari ३ and full-width ３.",
    "Special tokens in text: <|startoftext|> and <|endoftext|> inside.",
    "Upper-case special: <|ENDOFTEXT|> and <|StartOfText|>.",
    "Partial <|endoftext and endoftext|> and <||>.",
    "Special glued:a<|endoftext|>b and x.<|endoftext|>.",
    "Exclamations! Wow!! Really!!! !?",
    "Tab\tseparated\tvalues\tin\tthe\treport.",
    "Vertical\x0bbar and form\x0cfeed and next\x85line.",
    "Unicode line\u2028separator and paragraph\u2029separator.",
    "",
    " ",
    ".",
    "___",
    "!",
    "a",
    "No",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidociouslyunremarkablecardiomediastinalsilhouette",
    "x" * 100,
    "1234567890" * 12,
    "...!!!???" * 10,
]

FINDINGS = [
    "no focal consolidation", "small left pleural effusion", "mild pulmonary vascular congestion",
    "stable cardiomegaly", "right lower lobe atelectasis", "no pneumothorax",
    "endotracheal tube 4 cm above the carina", "nasogastric tube in the stomach",
    "left PICC tip in the SVC", "bibasilar opacities", "hyperinflation", "a 2.3 cm RUL nodule",
    "T7-T8 compression deformity", "median sternotomy wires", "moderate hiatal hernia",
    "interstitial edema", "multifocal pneumonia", "apical pleural thickening",
]
MODS = ["", "unchanged", "new since ___", "improved", "worsened", "likely", "cannot be excluded"]


def generated(rng):
    out = []
    for i in range(120):
        k = rng.randint(1, 3)
        parts = [f + (" " + rng.choice(MODS) if rng.random() < 0.6 else "") for f in rng.sample(FINDINGS, k)]
        s = "; ".join(parts)
        s = s[0].upper() + s[1:] + "."
        if i % 4 == 1:
            s = s.upper()
        if i % 5 == 2:
            s = s.replace(" ", "  \n\t ", 2)
        if i % 6 == 3:
            s = s.replace("-", "–").replace("cm", "㎝" if i % 12 == 3 else "cm")
        if i % 7 == 4:
            s = "IMPRESSION: " + s + " FINDINGS: ___"
        out.append(s)
    for i in range(40):  # over-long reports (well over 77 tokens)
        n = rng.randint(8, 20)
        s = " ".join(rng.choice(FINDINGS) + rng.choice([".", ",", ";", " -", " (" + str(rng.randint(1, 99)) + " mm)."])
                     for _ in range(n))
        if i % 3 == 0:
            s = "FINDINGS: " + s + "\n\nIMPRESSION: " + rng.choice(FINDINGS).upper() + "!"
        out.append(s)
    return out


def main():
    rng = random.Random(1234)
    torch.manual_seed(0)
    sentences = HAND + generated(rng)
    ids, lens = {}, {}
    for name in ("sd1", "sd2"):
        tok = CLIPTokenizer.from_pretrained(os.path.join(FIXTURES, "tokenizers", name))
        assert tok.model_max_length == 77
        enc = tok(sentences, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt")
        ids[name] = enc.input_ids.to(torch.int32)
        lens[name] = enc.attention_mask.sum(1).to(torch.int32)  # attention mask is 1 on BOS..EOS
        print(f"{name}: pad {tok.pad_token!r}={tok.pad_token_id}, {len(sentences)} sentences, "
              f"{int((lens[name] == 77).sum())} truncated/full")
    save("clip_tokenizer_ref.safetensors",
         {"ids_sd1": ids["sd1"], "ids_sd2": ids["sd2"], "len_sd1": lens["sd1"], "len_sd2": lens["sd2"]},
         meta={"transformers": transformers.__version__})
    path = os.path.join(FIXTURES, "clip_tokenizer_ref.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for s in sentences:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()
