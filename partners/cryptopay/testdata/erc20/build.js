// build.js compiles Token.sol with the pinned solc (internal/jstest) through
// solc's standard JSON interface and writes the artifact the Go tests deploy:
// {"contractName", "compiler", "evmVersion", "abi", "bytecode"}.
//
//	NODE_PATH=internal/jstest/node_modules node build.js [output]
//
// output defaults to Token.json beside this script. The EVM version is
// pinned to shanghai, the newest ganache 7.9.2 runs, so that the bytecode
// uses no opcode (MCOPY, TSTORE) ganache would refuse.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const source = fs.readFileSync(path.join(__dirname, 'Token.sol'), 'utf8');
const evmVersion = 'shanghai';
const input = {
  language: 'Solidity',
  sources: { 'Token.sol': { content: source } },
  settings: {
    evmVersion,
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { 'Token.sol': { Token: ['abi', 'evm.bytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === 'error');
for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
if (errors.length > 0) process.exit(1);

const token = output.contracts['Token.sol'].Token;
const artifact = {
  contractName: 'Token',
  compiler: 'solc ' + solc.version(),
  evmVersion,
  abi: token.abi,
  bytecode: '0x' + token.evm.bytecode.object,
};
const out = process.argv[2] || path.join(__dirname, 'Token.json');
fs.writeFileSync(out, JSON.stringify(artifact, null, 2) + '\n');
