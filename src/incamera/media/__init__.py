"""The media plane (SFU).

It forwards RTP/RTCP between peers and never decodes media. It imports nothing from the
web server, the database or the room logic, so that it can run in worker processes of
its own. Vocabulary (after mediasoup): Worker -> Router -> Transport -> Producer/Consumer.
"""
