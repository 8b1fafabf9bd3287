export { LineFramer, type LineSink } from './framer.js';
export { Session, type SessionAction, type SessionState } from './session.js';
export { StreamProtocol, type ActionSink } from './stream-protocol.js';
export { Replies, ALL_REPLIES, type ReplyInfo, type ReplyName } from './replies.js';
export { looksLikeHttp } from './cross-protocol.js';
export { interpretDatagram, type DatagramRequest } from './datagram.js';
