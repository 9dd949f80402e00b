import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TargetError } from './errors';
import { validateTarget } from './validate';

test('an unknown scheme is named, with the rest of the target redacted', () => {
  assert.throws(
    () => validateTarget('consull://user:S3CRET@10.0.0.5:8500/hello?token=T0KEN'),
    (e: unknown) => {
      assert.ok(e instanceof TargetError);
      assert.match(e.message, /unknown scheme "consull:" \(known: static, manual, composite\)/);
      assert.match(e.message, /consull:\/\/\*\*\*@10\.0\.0\.5:8500\/hello\?token=\*\*\*/);
      assert.doesNotMatch(e.message, /S3CRET|T0KEN/);
      return true;
    },
  );
});

test('a static target with userinfo is refused before any authority is computed', () => {
  assert.throws(
    () => validateTarget('static://u:S3CRET@hello/127.0.0.1:1'),
    (e: unknown) => e instanceof TargetError && !e.message.includes('S3CRET'),
  );
  assert.deepEqual(validateTarget('static://hello/127.0.0.1:1'), {
    scheme: 'static',
    defaultAuthority: 'hello',
  });
});
