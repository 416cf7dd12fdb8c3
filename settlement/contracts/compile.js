// Compiles the contracts with solc-js (offline) and writes one artifact per contract,
// OUT_DIR/<Name>.json with its ABI and creation bytecode (the files the Rust bindings read).
// Usage: node compile.js OUT_DIR [path-to-node_modules]
const fs = require("fs");
const path = require("path");
const outDir = process.argv[2];
if (!outDir) {
  process.stderr.write("usage: node compile.js OUT_DIR [node_modules]\n");
  process.exit(2);
}
const modules = process.argv[3] || path.join(__dirname, "..", ".tools", "node_modules");
const solc = require(path.join(modules, "solc"));
const sources = {};
for (const f of ["Ed25519.sol", "Escrow.sol", "SigBench.sol"]) {
  sources[f] = { content: fs.readFileSync(path.join(__dirname, f), "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 1000000 },
    viaIR: true,
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === "error");
for (const e of out.errors || []) process.stderr.write(e.formattedMessage + "\n");
if (errors.length) process.exit(1);
fs.mkdirSync(outDir, { recursive: true });
for (const [file, name] of [["Escrow.sol", "Escrow"], ["SigBench.sol", "SigBench"]]) {
  const c = out.contracts[file][name];
  const artifact = { compiler: "solc " + solc.version(), abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
  fs.writeFileSync(path.join(outDir, name + ".json"), JSON.stringify(artifact, null, 1) + "\n");
}
