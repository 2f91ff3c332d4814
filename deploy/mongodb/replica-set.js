// Run by compose.yaml's `mongodb-init` (`mongosh --nodb --file`) on every `docker compose up`.
// gigql uses transactions, which MongoDB only has on a replica set: this makes the stack's
// single mongod a one-member replica set, then waits until it has a primary.
// Idempotent: a set already initiated is left as it is; only "not yet initiated" initiates.
const REPLICA_SET = 'rs0';
const MEMBER = 'mongodb:27017'; // the name gigql's driver reaches it by, inside the network
const DEADLINE = Date.now() + 120 * 1000;

function untilDeadline(what, attempt) {
  for (;;) {
    try {
      const result = attempt();
      if (result) return result;
    } catch (error) {
      if (Date.now() > DEADLINE) throw error;
    }
    if (Date.now() > DEADLINE) throw new Error(`gave up after 120 s waiting for ${what}`);
    sleep(1000);
  }
}

const admin = untilDeadline('mongod to answer', () => {
  const database = connect(`mongodb://${MEMBER}/admin?directConnection=true`);
  database.adminCommand({ ping: 1 });
  return database;
});

try {
  admin.adminCommand({ replSetGetStatus: 1 });
  print(`replica set ${REPLICA_SET} is already initiated`);
} catch (error) {
  if (error.codeName !== 'NotYetInitialized') throw error;
  admin.adminCommand({
    replSetInitiate: { _id: REPLICA_SET, members: [{ _id: 0, host: MEMBER }] },
  });
  print(`initiated replica set ${REPLICA_SET} with ${MEMBER}`);
}

untilDeadline('a primary', () => admin.adminCommand({ hello: 1 }).isWritablePrimary);
print(`replica set ${REPLICA_SET} has a primary`);
