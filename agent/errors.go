package agent

import (
	"errors"

	"github.com/camgate/camgate/agent/web"
)

// ErrCameraExists is returned when add_camera (or the page's add) names a camera that is already
// added; the page answers it with 409 Conflict and MQTT with the code camera_exists.
var ErrCameraExists = errors.New("camera already exists")

// commandErrorFields are the fields an MQTT command reply carries beside "error" when err is
// one the caller can act on without reading English: "code" is the same stable code the page
// uses for it (agent/web/API.md).
func commandErrorFields(err error) map[string]any {
	switch {
	case errors.Is(err, ErrCameraExists):
		return map[string]any{"code": string(web.CodeCameraExists)}
	case errors.Is(err, ErrUnknownCamera):
		return map[string]any{"code": string(web.CodeNotFound)}
	}
	return nil
}
