import { describe, expect, it } from 'vitest';
import { formatBytes } from './format';

describe('formatBytes', () => {
  it('picks the unit after rounding, so a value just under a unit never reads 1,000 of the smaller', () => {
    expect(formatBytes(999_960, 'en')).toBe('1 MB');
    expect(formatBytes(999_400, 'en')).toBe('999 kB');
    expect(formatBytes(1_000_000, 'en')).toBe('1 MB');
    expect(formatBytes(999_999_999, 'en')).toBe('1 GB');
    expect(formatBytes(12_345_678, 'en')).toBe('12 MB');
    expect(formatBytes(9_960, 'en')).toBe('10 kB');
    expect(formatBytes(1_250, 'en')).toBe('1.3 kB');
    expect(formatBytes(0, 'en')).toBe('0 byte');
  });

  it('formats in Simplified Chinese too', () => {
    expect(formatBytes(999_960, 'zh-CN')).not.toContain('1,000');
    expect(formatBytes(999_960, 'zh-CN')).toContain('1');
  });
});
