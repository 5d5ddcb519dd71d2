"""Code that runs inside Rucio's own processes: the gfal2 transfertool and the S3 protocol.

Rucio imports these modules by dotted name (an RSE protocol's ``impl``, the conveyor's
transfertool registry), in its server, its daemons and its clients. They therefore import
nothing from inlet's CLI, lake, uploader or listener: a site installs inlet next to Rucio and
points its configuration at these classes, without running anything else of inlet.
"""
