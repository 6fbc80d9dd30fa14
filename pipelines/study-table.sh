#!/bin/sh
# pipelines/study-table.sh — the study's results.csv (study.mk) as the paper lays
# its linear-probe table out: one row per method, one column per dataset and
# label fraction, each cell the metric in percent with its bootstrap 95 %
# interval; or, with --plot-data, one gnuplot data file per dataset and method
# (fraction value low high, in percent) under DIR; with --csv, cxreval's JSON
# lines as that CSV (method = the checkpoint's file name without .safetensors,
# or the baseline's init; val_loss and val_value are the probe's figures on
# the validation split, for choosing settings without looking at the test set).
#   study-table.sh --csv results.jsonl >results.csv
#   study-table.sh results.csv "chexpert rsna covidx" "0.01 0.1 1"
#   study-table.sh --plot-data results.csv DIR
set -eu
if [ "$1" = --csv ]; then
  jq -r -s '(["method","dataset","fraction","init","checkpoint","metric","value","ci_low","ci_high","seed",
              "n_train","n_val","n_test","val_loss","val_value"] | @csv),
    (.[] | [(if .checkpoint then (.checkpoint | split("/") | last | sub("\\.safetensors$"; "")) else .init end),
            .dataset, .fraction, .init, (.checkpoint // ""), .metric, .value, .ci_low, .ci_high, .seed,
            .n_train, .n_val, .n_test, .val_loss, .val_value] | @csv)' "$2"
  exit 0
fi
if [ "$1" = --plot-data ]; then
  csv=$2 dir=$3
  rm -rf "$dir" && mkdir -p "$dir"
  # CSV fields are quoted by jq's @csv; no field here holds a comma.
  tail -n +2 "$csv" | tr -d '"' | sort -t, -k1,1 -k2,2 -k3,3g |
    awk -F, -v dir="$dir" '{ f = dir "/" $2 "__" $1 ".dat"; printf "%s %.4f %.4f %.4f\n", $3, 100*$7, 100*$8, 100*$9 >> f }'
  exit 0
fi
csv=$1 datasets=$2 fractions=$3
tail -n +2 "$csv" | tr -d '"' | awk -F, -v ds="$datasets" -v fr="$fractions" '
  BEGIN { nd = split(ds, D, " "); nf = split(fr, F, " ")
          name["chexpert"] = "CheXpert (AUROC)"; name["rsna"] = "RSNA (AUROC)"; name["covidx"] = "COVIDx (ACC)" }
  { m = $1; if (!(m in seen)) { seen[m] = 1; order[++nm] = m }
    cell[m, $2, $3 + 0] = sprintf("%.1f (%.1f-%.1f)", 100*$7, 100*$8, 100*$9) }
  END {
    printf "| Method |"; for (i = 1; i <= nd; i++) for (j = 1; j <= nf; j++) printf " %s %g%% |", name[D[i]], 100*F[j]; print ""
    printf "| --- |"; for (i = 1; i <= nd * nf; i++) printf " --- |"; print ""
    for (k = 1; k <= nm; k++) { m = order[k]; printf "| %s |", m
      for (i = 1; i <= nd; i++) for (j = 1; j <= nf; j++) { c = cell[m, D[i], F[j] + 0]; printf " %s |", c == "" ? "-" : c }
      print "" }
    print ""
    print "Linear probe on the frozen image encoder (MGCA protocol); cells: metric in % with its bootstrap 95 % interval."
  }'
