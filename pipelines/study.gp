# pipelines/study.gp — the study's plot: one panel per dataset, the metric (%)
# against the label fraction (log scale), a line with interval bars per method.
# gnuplot -e "dir='OUT/plot'; out='x.png'; datasets='chexpert rsna covidx'" study.gp
set terminal pngcairo size 1200,400 font ",10" noenhanced
set output out
n = words(datasets)
set multiplot layout 1, n title "Linear probe on the frozen image encoder"
set logscale x
set xrange [0.007:1.4]
set xtics ("1%%" 0.01, "10%%" 0.1, "100%%" 1)
set grid
set key bottom right
do for [i = 1:n] {
  d = word(datasets, i)
  set title (d eq "covidx" ? "COVIDx (accuracy %)" : d eq "rsna" ? "RSNA (AUROC %)" : "CheXpert (AUROC %)")
  files = system("ls " . dir . "/" . d . "__*.dat 2>/dev/null")
  plot for [f in files] f using 1:2:3:4 with yerrorlines title substr(f, strlen(dir) + strlen(d) + 4, strlen(f) - 4)
}
unset multiplot
