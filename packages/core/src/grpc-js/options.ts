import type { ChannelOptions } from '@grpc/grpc-js';

/**
 * Leaves get the channel options without the ConfigSelector attribute
 * (`selectorKey`): it is not a connection property, and keeping it out of
 * subchannel args lets channels to the same backends share connections from
 * grpc-js's subchannel pool.
 */
export function withoutKey(options: ChannelOptions, selectorKey: string): ChannelOptions {
  if (!(selectorKey in options)) return options;
  const copy: ChannelOptions = { ...options };
  delete copy[selectorKey];
  return copy;
}
