/**
 * A size in the language's own units (Intl formats both the number and the unit). The unit is
 * chosen after rounding, so 999,960 bytes read "1 MB", never "1,000 kB".
 */
export function formatBytes(bytes: number, locale: string): string {
  const units = ['byte', 'kilobyte', 'megabyte', 'gigabyte', 'terabyte'];
  const digits = (x: number) => (x < 10 ? 1 : 0);
  const rounded = (x: number) => {
    const f = 10 ** digits(x);
    return Math.round(x * f) / f;
  };
  let v = bytes;
  let u = 0;
  while (rounded(v) >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return new Intl.NumberFormat(locale, {
    style: 'unit',
    unit: units[u],
    maximumFractionDigits: digits(v),
  }).format(v);
}
