/** `npm run bench -- [--quick]`: not yet implemented beyond this notice (issue 4). */
console.error('grpc-lb bench: scenarios are being written (issue 4)');
process.exitCode = 2;
