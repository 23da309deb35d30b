# In the source tree this package holds the rclpy node code, while colcon installs the generated msg/ and srv/
# modules into the installed copy of the same package: let either copy find the other's submodules.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)
