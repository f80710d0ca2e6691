"""Print every parity case of a fixture set with its measured error and tolerance.

    python -m oldphoto_jax.parity [case ...]      # fixture set from $OLDPHOTO_PARITY_DIR

Exits non-zero if any comparison fails or a case has a kind no runner knows.
"""
import sys
import time


def main(argv: list[str]) -> int:
    from oldphoto_jax.parity import EXPECTED_FAILURES, RUNNERS, cases_dir, list_cases, load_case

    cases = list_cases()
    names = argv or list(cases)
    print(f"fixture set: {cases_dir()}")
    failed = 0
    for name in names:
        kind = cases[name]["kind"]
        if kind in EXPECTED_FAILURES:
            print(f"xfail {name:22s} ({kind}): {EXPECTED_FAILURES[kind]}")
            continue
        if kind not in RUNNERS:
            print(f"FAIL {name:22s} unknown kind {kind!r}")
            failed += 1
            continue
        start = time.perf_counter()
        comparisons = RUNNERS[kind](load_case(name))
        for c in comparisons:
            print(c.line())
            failed += not c.passed
        print(f"     {name:22s} {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    from oldphoto_jax import cpu_tuning

    cpu_tuning.apply()  # before the JAX backend starts
    sys.exit(main(sys.argv[1:]))
