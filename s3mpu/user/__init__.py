"""The user's side: no credentials, only a manifest and a file (or a pipe).

``upload`` runs the steps of ``s3mpu put``; ``sources`` reads parts, ``transfer`` runs them
in parallel over ``httpclient``; ``journal`` and ``resume`` make re-runs converge;
``relayclient`` asks the relay to complete. (Named ``user``, not ``upload``: a package
``s3mpu.upload`` would shadow the public function ``s3mpu.upload`` once imported.)
"""
