#!/bin/sh
# copybench.sh: multiproc copy -r against cp -r on one tree, in page cache.
#
#   go build -o /tmp/multiproc ./cmd/multiproc
#   sh cmd/multiproc/testdata/copybench.sh /tmp/multiproc [DIR] [RUNS]
#
# Builds in DIR (default: a new directory under $TMPDIR or /tmp) a tree of
# SMALL small files (1 to 32 KiB, in 100 directories, some empty
# directories and symbolic links), BIG big files of BIGMB MiB and one
# sparse file of 1 GiB holding 64 MiB of data in 1 MiB pieces. It reads it
# once (page cache), then runs cp -r and multiproc copy -r alternately
# RUNS times (default 3) into fresh destinations (removed between runs,
# outside the timing) and prints the table: tree shape, the median wall
# times and their ratio. SMALL, BIG and BIGMB come from the environment
# (defaults 5000, 3, 128). With OLD=another multiproc binary, that one runs
# too, in the same alternation, for a before/after comparison on a busy
# machine; JOBS=N passes -j N to both. WRAP is a command prefix for the
# timed runs only: WRAP="chrt -f 10" (root) runs them ahead of the other
# programs of a busy machine, cp and multiproc alike, an approximation of
# a quiet one; WRAP="nice -n -20" another, which leaves the others time
# slices. On a busy VM the two give very different ratios (README).
set -eu
bin=${1:?usage: copybench.sh MULTIPROC [DIR] [RUNS]}
dir=${2:-$(mktemp -d "${TMPDIR:-/tmp}/copybench.XXXXXX")}
runs=${3:-3}
small=${SMALL:-5000}
big=${BIG:-3}
bigmb=${BIGMB:-128}
src=$dir/src
if [ ! -e "$src/.complete" ]; then
	rm -rf "$src"
	mkdir -p "$src"
	i=0
	while [ $i -lt 100 ]; do mkdir -p "$src/d$i/e$((i % 7))"; i=$((i + 1)); done
	mkdir -p "$src/empty1" "$src/empty2/empty3"
	# The small files: one random 64 KiB block, cut at several sizes.
	head -c 65536 /dev/urandom >"$dir/block"
	i=0
	while [ $i -lt "$small" ]; do
		n=$(( (i * 7919) % 32 + 1 ))
		head -c $((n * 1024)) "$dir/block" >"$src/d$((i % 100))/f$i"
		i=$((i + 1))
	done
	i=0
	while [ $i -lt 50 ]; do ln -s "../d$i/f$i" "$src/d$((i + 1))/link$i"; i=$((i + 1)); done
	i=0
	while [ $i -lt "$big" ]; do head -c $((bigmb << 20)) /dev/urandom >"$src/big$i"; i=$((i + 1)); done
	truncate -s 1G "$src/sparse"
	i=0
	while [ $i -lt 64 ]; do
		head -c 1048576 /dev/urandom | dd of="$src/sparse" bs=1M seek=$((i * 16)) conv=notrunc 2>/dev/null
		i=$((i + 1))
	done
	touch "$src/.complete"
fi
cat "$src"/big* "$src"/sparse >/dev/null
find "$src" -type f -exec cat {} + >/dev/null

now() { date +%s.%N; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
old=${OLD:-}
jobs=${JOBS:+-j $JOBS}
wrap=${WRAP:-}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
cpt=""
mpt=""
oldt=""
# mp BIN: one timed run of BIN copy -r, checked; prints the seconds.
mp() {
	rm -rf "$dir/mp"
	sync
	t0=$(now); $wrap "$1" copy -r $jobs "$src" "$dir/mp"; t1=$(now)
	diff -r --no-dereference "$src" "$dir/mp" >/dev/null || { echo "copybench: the copy by $1 differs from the source" >&2; exit 1; }
	rm -rf "$dir/mp"
	echo "$t1 - $t0" | bc
}
r=0
while [ $r -lt "$runs" ]; do
	rm -rf "$dir/cp"
	sync
	t0=$(now); $wrap cp -r "$src" "$dir/cp"; t1=$(now)
	cpt="$cpt $(echo "$t1 - $t0" | bc)"
	rm -rf "$dir/cp"
	mpt="$mpt $(mp "$bin")"
	[ -z "$old" ] || oldt="$oldt $(mp "$old")"
	r=$((r + 1))
done
files=$(find "$src" -type f | wc -l)
dirs=$(find "$src" -type d | wc -l)
links=$(find "$src" -type l | wc -l)
data=$(du -sm "$src" | cut -f1)
apparent=$(du -sm --apparent-size "$src" | cut -f1)
cpm=$(echo "$cpt" | tr ' ' '\n' | grep . | median)
mpm=$(echo "$mpt" | tr ' ' '\n' | grep . | median)
echo "tree: $files files ($small small of 1-32 KiB, $big of $bigmb MiB, 1 sparse of 1 GiB with 64 MiB data), $dirs directories, $links symbolic links; $data MiB on disk, $apparent MiB apparent"
echo "where: $(df -T "$dir" | awk 'NR == 2 {print $2}') ($dir); cores: $(nproc); load before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg); runs: $runs, alternating${wrap:+, under $wrap}"
echo "cp -r runs (s):        $cpt"
echo "multiproc copy -r $jobs(s): $mpt"
[ -z "$old" ] || echo "old ($old) (s): $oldt"
printf '%-22s %10s %10s %8s\n' "" "cp -r" "multiproc" "ratio"
printf '%-22s %9.3fs %9.3fs %8.2f\n' "median wall time" "$cpm" "$mpm" "$(echo "scale=4; $mpm / $cpm" | bc)"
if [ -n "$old" ]; then
	oldm=$(echo "$oldt" | tr ' ' '\n' | grep . | median)
	printf '%-22s %9.3fs %9.3fs %8.2f\n' "old binary" "$cpm" "$oldm" "$(echo "scale=4; $oldm / $cpm" | bc)"
fi
