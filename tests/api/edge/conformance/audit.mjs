// The GraphQL-over-HTTP specification's server audits (graphql-http's `auditServer`),
// run against the URL given as the first argument. Prints one JSON object per audit
// ({id, name, status, reason}) on a line of its own, for tests/api/test_http_conformance.py.
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <url of /graphql>');
  process.exit(2);
}
for (const result of await auditServer({ url })) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') line.reason = result.reason;
  console.log(JSON.stringify(line));
}
