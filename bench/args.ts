/**
 * Command-line arguments of the bench scripts: a mistyped or unsupported flag
 * would otherwise run a different benchmark than asked for, silently.
 */

export interface ArgSpec {
  /** Flags on their own (`--quick`). */
  flags?: string[];
  /** Flags followed by one value (`--runs 10`). */
  values?: string[];
  /** Flags followed by values up to the next flag (`--merge a.json b.json`). */
  lists?: string[];
}

/** `argv` checked against `spec` (throws on an unknown argument, naming it), and a lookup of a flag's value. */
export function parseArgs(script: string, argv: string[], spec: ArgSpec) {
  const {flags = [], values = [], lists = []} = spec;
  for (let i = 0; i < argv.length; i++) {
    if (lists.includes(argv[i])) {
      while (i + 1 < argv.length && !argv[i + 1].startsWith('--')) i++;
    } else if (values.includes(argv[i])) {
      i++;
    } else if (!flags.includes(argv[i])) {
      throw new Error(`${script}: unknown argument ${JSON.stringify(argv[i])}; it takes ${
        [...flags, ...values.map(f => `${f} VALUE`), ...lists.map(f => `${f} VALUES`)].join(', ')}`);
    }
  }
  return {
    has: (flag: string) => argv.includes(flag),
    value: (flag: string): string | undefined => {
      const i = argv.indexOf(flag);
      return i >= 0 ? argv[i + 1] : undefined;
    },
  };
}
