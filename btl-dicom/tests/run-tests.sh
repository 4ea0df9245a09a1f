#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs every C test binary in DIR; each prints its own TAP, shown indented.
# Prints one TAP line per binary and exits nonzero if any failed.
dir=${1:?usage: run-tests.sh DIR}
n=0
failed=0
tests=$(ls "$dir"/test_* 2>/dev/null | sort)
count=$(echo "$tests" | grep -c .)
echo "1..$count"
for t in $tests; do
	n=$((n + 1))
	name=$(basename "$t")
	start=$(date +%s)
	out=$(timeout 170 "$t" 2>&1)
	rc=$?
	secs=$(( $(date +%s) - start ))
	echo "$out" | sed 's/^/    /'
	if [ $rc -eq 0 ] && ! echo "$out" | grep -q '^not ok'; then
		echo "ok $n - $name (${secs}s)"
	else
		echo "not ok $n - $name (exit $rc, ${secs}s)"
		failed=$((failed + 1))
	fi
done
if [ $failed -ne 0 ]; then
	echo "# $failed of $count test programs failed"
	exit 1
fi
echo "# all $count test programs passed"
