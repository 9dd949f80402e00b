/** Where grpc-lb reports what an operator should see. Secrets never reach it. */
export interface Logger {
  warn(message: string): void;
}

export const consoleLogger: Logger = {
  warn(message) {
    console.warn(`[grpc-lb] ${message}`);
  },
};
