// A node:test reporter for the Rust harness (tests/src/js.rs): one JSON line
// per finished test or suite — its path (describe names, then its own
// name), whether it passed, failed, was skipped or is a todo, and for a
// failure the error — plus node's closing counts ("tests 27", …). The
// harness prints one line per test from this, requires every test to have
// run, and re-runs failed ones by name.
export default async function* report(source) {
  const stack = [];
  for await (const { type, data } of source) {
    if (type === 'test:start') {
      stack.length = data.nesting;
      stack.push(data.name);
    } else if (type === 'test:pass' || type === 'test:fail') {
      const path = [...stack.slice(0, data.nesting), data.name];
      let status = type === 'test:pass' ? 'pass' : 'fail';
      let reason;
      if (data.skip !== undefined && data.skip !== false) {
        status = 'skip';
        reason = typeof data.skip === 'string' ? data.skip : '';
      } else if (data.todo !== undefined && data.todo !== false) {
        status = 'todo';
        reason = typeof data.todo === 'string' ? data.todo : '';
      }
      yield `${JSON.stringify({
        path,
        kind: data.details?.type === 'suite' ? 'suite' : 'test',
        status,
        reason,
        error: type === 'test:fail' ? describe(data.details?.error) : undefined,
        ms: Math.round(data.details?.duration_ms ?? 0),
      })}\n`;
    } else if (type === 'test:diagnostic' && data.nesting === 0) {
      yield `${JSON.stringify({ diagnostic: data.message })}\n`;
    }
  }
}

/** What went wrong, readably: the assertion (the error's cause) and where. */
function describe(error) {
  if (!error) return 'failed';
  const inner = error.cause ?? error;
  const kind = error.failureType && error.failureType !== 'testCodeFailure' ? `[${error.failureType}] ` : '';
  const text = inner instanceof Error ? inner.stack ?? inner.message : String(inner?.message ?? inner);
  return kind + text.split('\n').slice(0, 12).join('\n');
}
