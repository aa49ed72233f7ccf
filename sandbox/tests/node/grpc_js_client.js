// A stock @grpc/grpc-js client with default options against the daemon's Unix socket.
//
//   node grpc_js_client.js SOCKET PROTO_ROOT
//
// Prints one JSON object; sandbox/tests/node_client.rs asserts on it.
"use strict";

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [socket, protoRoot] = process.argv.slice(2);
const definition = protoLoader.loadSync("azr/sandbox/v1/sandbox.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  enums: String,
  defaults: true,
  oneofs: true,
});
const { Sandbox } = grpc.loadPackageDefinition(definition).azr.sandbox.v1;
const client = new Sandbox(`unix://${socket}`, grpc.credentials.createInsecure());

function call(method, request) {
  return new Promise((resolve) => {
    client[method](request, (error, reply) =>
      resolve(error ? { code: grpc.status[error.code] } : reply),
    );
  });
}

async function main() {
  const program = { source: "def f(x):\n    print('hi')\n    return x * 2", imports: [] };
  const health = await call("Health", {});
  const run = await call("Run", { task: { program, input: "21" } });
  const batch = await call("TestBatch", {
    program: { source: "print(int(input()) * 2)", imports: [] },
    tasks: [
      { stdio: { stdin: "21\n", expected_stdout: "42" } },
      { stdio: { stdin: "x\n", expected_stdout: "0" } },
    ],
  });
  const invalid = await call("Run", {
    task: { program, input: "1" },
    options: { limits: { timeout_ms: 0 } },
  });
  console.log(
    JSON.stringify({
      health: health.status,
      run: [run.verdict, run.value, run.stdout],
      batch: batch.outcomes.map((o) => [o.verdict, o.passed, o.exit_code]),
      invalid: invalid.code,
    }),
  );
  client.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
